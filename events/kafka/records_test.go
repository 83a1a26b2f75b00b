package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hexride/hexride/events"
	"github.com/hexride/hexride/ride"
	kafkago "github.com/segmentio/kafka-go"
)

// TestDriverEventsGoManyToARecord: the producer puts a partition's driver
// events in few records, and consumers still see each event once, each
// driver's in order, acknowledged ones included.
func TestDriverEventsGoManyToARecord(t *testing.T) {
	brokers := startBroker(t, 4, events.TopicDriverEvents)
	p := NewProducerWith(ProducerConfig{Brokers: brokers, PingLinger: 20 * time.Millisecond})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const drivers, each = 40, 25
	for i := range each {
		for d := range drivers {
			e, err := events.NewWithID(fmt.Sprintf("d%02d-%03d", d, i), events.TypeDriverLocation, fmt.Sprintf("d%02d", d), time.Now(),
				ride.DriverLocation{DriverID: fmt.Sprintf("d%02d", d), Lat: 1, Lng: 2})
			if err != nil {
				t.Fatal(err)
			}
			if i == each-1 && d%10 == 0 {
				err = p.Publish(ctx, events.Outgoing{Topic: events.TopicDriverEvents, Env: e}) // acknowledged, behind its driver's pings
			} else {
				err = p.Send(ctx, events.Outgoing{Topic: events.TopicDriverEvents, Env: e})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	p.Close() // what is still waiting goes out
	records := int64(0)
	for part := range 4 {
		c, err := kafkago.DialLeader(ctx, "tcp", brokers[0], events.TopicDriverEvents, part)
		if err != nil {
			t.Fatal(err)
		}
		last, err := c.ReadLastOffset()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		records += last
	}
	if records > drivers*each/10 {
		t.Errorf("%d events took %d records; want them many to a record", drivers*each, records)
	}
	for group, consume := range map[string]func(context.Context, ConsumerConfig, func(events.Envelope)) error{
		"many": func(ctx context.Context, cfg ConsumerConfig, h func(events.Envelope)) error {
			return Consume(ctx, cfg, func(_ context.Context, e events.Envelope) error { h(e); return nil })
		},
		"many-batches": func(ctx context.Context, cfg ConsumerConfig, h func(events.Envelope)) error {
			return ConsumeBatches(ctx, cfg, func(_ context.Context, es []events.Envelope) error {
				for _, e := range es {
					h(e)
				}
				return nil
			})
		},
	} {
		var mu sync.Mutex
		seen := map[string][]string{}
		total := 0
		cctx, stop := context.WithCancel(ctx)
		err := consume(cctx, ConsumerConfig{Brokers: brokers, Group: group, Topic: events.TopicDriverEvents, Bulk: true},
			func(e events.Envelope) {
				mu.Lock()
				defer mu.Unlock()
				seen[e.Key] = append(seen[e.Key], e.ID)
				if total++; total == drivers*each {
					stop()
				}
			})
		stop()
		if err != nil {
			t.Fatal(err)
		}
		if total != drivers*each {
			t.Fatalf("%s: consumed %d of %d events", group, total, drivers*each)
		}
		for d := range drivers {
			key := fmt.Sprintf("d%02d", d)
			if got := seen[key]; len(got) != each || !slices.IsSorted(got) {
				t.Fatalf("%s: driver %s: %v; want its %d events once, in order", group, key, got, each)
			}
		}
		// The metric counts events, not the records that carried them.
		if got := counter(t, "hexride_events_consumed_total", group, events.TopicDriverEvents); got != drivers*each {
			t.Errorf("%s: hexride_events_consumed_total %v; want %d", group, got, drivers*each)
		}
	}
}

// TestBadEventInABatchRecord: an event of a batch record that cannot be
// decoded or handled is dead-lettered alone; the rest of its record is
// handled, by Consume and by ConsumeBatches.
func TestBadEventInABatchRecord(t *testing.T) {
	const topic = "mixed.test"
	brokers := startBroker(t, 1, topic, events.TopicDeadLetters)
	p := NewProducer(brokers, 0)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := func(id string) string {
		e, err := events.NewWithID(id, events.TypeDriverLocation, "k", time.Now(), ride.DriverLocation{DriverID: "k"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	value := "[" + env("e1") + `,{"id":"","type":"x","v":1},` + env("refused") + "," + env("e2") + "]"
	if err := p.PublishRaw(ctx, topic, []byte("k"), []byte(value)); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishRaw(ctx, topic, []byte("k"), []byte(env("e3"))); err != nil {
		t.Fatal(err)
	}
	// Every event of this one decodes: the one the handler refuses is
	// dead-lettered with its own bytes all the same.
	if err := p.PublishRaw(ctx, topic, []byte("k"), []byte("["+env("e4")+","+env("refused2")+","+env("e5")+"]")); err != nil {
		t.Fatal(err)
	}
	run := func(group string, consume func(context.Context, ConsumerConfig, func([]events.Envelope) error) error) []string {
		var got []string
		cctx, stop := context.WithCancel(ctx)
		defer stop()
		// Stop once all three records are done with (committed): their
		// dead letters are published by then.
		go func() {
			client := &kafkago.Client{Addr: kafkago.TCP(brokers...)}
			for cctx.Err() == nil {
				res, err := client.OffsetFetch(cctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0}}})
				if err == nil && len(res.Topics[topic]) == 1 && res.Topics[topic][0].CommittedOffset == 3 {
					stop()
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		err := consume(cctx, ConsumerConfig{Brokers: brokers, Group: group, Topic: topic, DeadLetters: p},
			func(es []events.Envelope) error {
				for _, e := range es {
					if strings.HasPrefix(e.ID, "refused") {
						return events.Permanent(errors.New("refused"))
					}
				}
				for _, e := range es {
					got = append(got, e.ID)
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	one := run("one", func(ctx context.Context, cfg ConsumerConfig, h func([]events.Envelope) error) error {
		return Consume(ctx, cfg, func(_ context.Context, e events.Envelope) error { return h([]events.Envelope{e}) })
	})
	batches := run("batches", func(ctx context.Context, cfg ConsumerConfig, h func([]events.Envelope) error) error {
		return ConsumeBatches(ctx, cfg, func(_ context.Context, es []events.Envelope) error { return h(es) })
	})
	for name, got := range map[string][]string{"Consume": one, "ConsumeBatches": batches} {
		if strings.Join(got, ",") != "e1,e2,e3,e4,e5" {
			t.Errorf("%s handled %v; want e1,e2,e3,e4,e5", name, got)
		}
	}
	var dead []string
	for _, e := range readTopic(ctx, t, brokers, events.TopicDeadLetters, 1) {
		var dl events.DeadLetter
		if err := e.DecodePayload(&dl); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(dl.Value, "[") {
			t.Errorf("a whole batch record was dead-lettered: %s", dl.Reason)
		}
		id := "(bad)"
		if v, err := events.Decode([]byte(dl.Value)); err == nil {
			id = v.ID
		}
		dead = append(dead, dl.Group+":"+id)
	}
	slices.Sort(dead)
	if want := "batches:(bad),batches:refused,batches:refused2,one:(bad),one:refused,one:refused2"; strings.Join(dead, ",") != want {
		t.Errorf("dead letters %v; want %s", dead, want)
	}
	for _, group := range []string{"one", "batches"} {
		if got := counter(t, "hexride_events_consumed_total", group, topic); got != 5 {
			t.Errorf("%s: hexride_events_consumed_total %v; want 5", group, got)
		}
		if got := counter(t, "hexride_events_dead_letters_total", group, topic); got != 3 {
			t.Errorf("%s: hexride_events_dead_letters_total %v; want 3", group, got)
		}
	}
}
