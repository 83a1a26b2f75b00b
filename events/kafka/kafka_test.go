package kafka

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hexride/hexride/events"
	"github.com/hexride/hexride/internal/devbroker"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
	kafkago "github.com/segmentio/kafka-go"
)

func startBroker(t testing.TB, partitions int, topics ...string) []string {
	t.Helper()
	b, err := devbroker.StartLocal(0, partitions, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, b.Addrs(), partitions, topics...); err != nil {
		t.Fatal(err)
	}
	return b.Addrs()
}

// partitionOf is where the producer's balancer puts key.
func partitionOf(key string, partitions int) int {
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	return (&kafkago.Hash{}).Balance(kafkago.Message{Key: []byte(key)}, ps...)
}

// TestConsumeRunsPartitionsApart checks the consumer's promises: a handler
// stuck on one partition holds up no other, each key's events arrive in
// order, and what was handled is committed, so a restarted member carries
// on after it.
func TestConsumeRunsPartitionsApart(t *testing.T) {
	const topic, partitions, perKey = "consume.test", 4, 20
	brokers := startBroker(t, partitions, topic)
	p := NewProducer(brokers, time.Millisecond)
	defer p.Close()

	slow := "slow"
	var keys []string // keys on partitions other than slow's
	for i := 0; len(keys) < 6; i++ {
		k := fmt.Sprintf("k%d", i)
		if partitionOf(k, partitions) != partitionOf(slow, partitions) {
			keys = append(keys, k)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var outs []events.Outgoing
	for seq := range perKey {
		for _, k := range append([]string{slow}, keys...) {
			e, err := events.NewWithID(fmt.Sprintf("%s-%d", k, seq), events.TypeDriverLocation, k, time.Now(), map[string]int{"seq": seq})
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, events.Outgoing{Topic: topic, Env: e})
		}
	}
	if err := p.Publish(ctx, outs...); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	seen := map[string][]int{}
	othersDone := make(chan struct{})
	release := make(chan struct{})
	allDone := make(chan struct{})
	handler := func(ctx context.Context, e events.Envelope) error {
		var pl struct{ Seq int }
		if err := e.DecodePayload(&pl); err != nil {
			return err
		}
		if e.Key == slow && pl.Seq == 0 {
			select { // hold slow's partition until every other key is through
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mu.Lock()
		defer mu.Unlock()
		seen[e.Key] = append(seen[e.Key], pl.Seq)
		others := 0
		for _, k := range keys {
			others += len(seen[k])
		}
		if others == len(keys)*perKey && len(seen[slow]) == 0 {
			close(othersDone)
		}
		if others+len(seen[slow]) == (len(keys)+1)*perKey {
			close(allDone)
		}
		return nil
	}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Consume(cctx, ConsumerConfig{Brokers: brokers, Group: "g", Topic: topic}, handler) }()
	select {
	case <-othersDone:
	case <-time.After(30 * time.Second):
		t.Fatal("a handler stuck on one partition held up the others")
	}
	close(release)
	select {
	case <-allDone:
	case <-time.After(30 * time.Second):
		t.Fatal("not every event was handled")
	}
	for k, seqs := range seen {
		for i, s := range seqs {
			if s != i {
				t.Fatalf("key %s handled in the order %v; want 0..%d", k, seqs, perKey-1)
			}
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Consume after ctx ended: %v", err)
	}

	// A new member of the group starts after what was committed.
	e, err := events.NewWithID("after-restart", events.TypeDriverLocation, "k0", time.Now(), map[string]int{"seq": perKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, events.Outgoing{Topic: topic, Env: e}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 200)
	cctx, stop = context.WithCancel(ctx)
	defer stop()
	go func() {
		done <- Consume(cctx, ConsumerConfig{Brokers: brokers, Group: "g", Topic: topic}, func(_ context.Context, e events.Envelope) error {
			got <- e.ID
			return nil
		})
	}()
	select {
	case id := <-got:
		if id != "after-restart" {
			t.Fatalf("the restarted member got %s first; want only the event published after the first member stopped", id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the restarted member got nothing")
	}
	time.Sleep(300 * time.Millisecond)
	if len(got) > 0 {
		var more []string
		for len(got) > 0 {
			more = append(more, <-got)
		}
		t.Fatalf("redelivered after a clean stop: %s", strings.Join(more, ", "))
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Consume after ctx ended: %v", err)
	}
}

// TestConsumeBatches checks that a batch handler gets what queued up, in
// order, and that a permanent error sends only the bad event to the
// dead-letter topic, the rest of its batch being handled one by one.
func TestConsumeBatches(t *testing.T) {
	const topic = "batch.test"
	brokers := startBroker(t, 2, topic, events.TopicDeadLetters)
	p := NewProducer(brokers, time.Millisecond)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var outs []events.Outgoing
	for i := range 100 {
		id := fmt.Sprintf("e%03d", i)
		if i == 40 {
			id = "bad"
		}
		e, err := events.NewWithID(id, events.TypeDriverLocation, "one-key", time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, events.Outgoing{Topic: topic, Env: e})
	}
	// Half first, so that they form batches; then the half with the bad one.
	if err := p.Publish(ctx, outs[:40]...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var handled []string
	largest := 0
	done := make(chan struct{})
	cctx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		errc <- ConsumeBatches(cctx, ConsumerConfig{Brokers: brokers, Group: "b", Topic: topic, DeadLetters: p},
			func(_ context.Context, es []events.Envelope) error {
				for _, e := range es {
					if e.ID == "bad" {
						return events.Permanent(fmt.Errorf("cannot take %s", e.ID))
					}
				}
				time.Sleep(2 * time.Millisecond) // a round trip's worth: events queue meanwhile
				mu.Lock()
				defer mu.Unlock()
				largest = max(largest, len(es))
				for _, e := range es {
					handled = append(handled, e.ID)
				}
				if len(handled) == 99 {
					close(done)
				}
				return nil
			})
	}()
	waitFor := func(n int) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			got := len(handled)
			mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("handled %d of %d good events", got, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(40)
	if err := p.Publish(ctx, outs[40:]...); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("handled %d of 99 good events", len(handled))
	}
	stop()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, o := range outs {
		if o.Env.ID != "bad" {
			want = append(want, o.Env.ID)
		}
	}
	if strings.Join(handled, ",") != strings.Join(want, ",") {
		t.Fatalf("handled %v; want every good event once, in order", handled)
	}
	if largest < 2 {
		t.Fatalf("largest batch %d; want the queued events together", largest)
	}
	var dead []string
	for _, e := range readTopic(ctx, t, brokers, events.TopicDeadLetters, 2) {
		var dl events.DeadLetter
		if err := e.DecodePayload(&dl); err != nil {
			t.Fatal(err)
		}
		v, _ := events.Decode([]byte(dl.Value))
		dead = append(dead, v.ID)
	}
	if len(dead) != 1 || dead[0] != "bad" {
		t.Fatalf("dead letters %v, want just bad", dead)
	}
}

// TestSendKeepsOrderWithPublish sends pings without waiting, publishes an
// acknowledged event behind them on the same key, and reads the topic back:
// nothing lost, each key in order, and Send refuses what needs an ack.
func TestSendKeepsOrderWithPublish(t *testing.T) {
	brokers := startBroker(t, 4, events.TopicDriverEvents)
	p := NewProducerWith(ProducerConfig{Brokers: brokers, PingLinger: 2 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const drivers, each = 20, 50
	for i := range each {
		for d := range drivers {
			key := fmt.Sprintf("d%d", d)
			e, err := events.NewWithID(fmt.Sprintf("%s-%03d", key, i), events.TypeDriverLocation, key, time.Now(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Send(ctx, events.Outgoing{Topic: events.TopicDriverEvents, Env: e}); err != nil {
				t.Fatal(err)
			}
		}
	}
	last, err := events.NewWithID("d0-zzz", events.TypeDriverAvailability, "d0", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, events.Outgoing{Topic: events.TopicDriverEvents, Env: last}); err != nil {
		t.Fatal(err)
	}
	cmd, _ := events.NewWithID("c1", events.TypeRideRequest, "t1", time.Now(), nil)
	if err := p.Send(ctx, events.Outgoing{Topic: events.TopicTripCommands, Env: cmd}); err == nil {
		t.Fatal("Send took a trip command, which must be acknowledged")
	}
	if err := p.Close(); err != nil { // flushes what Send queued
		t.Fatal(err)
	}
	got := map[string][]string{}
	all := readTopic(ctx, t, brokers, events.TopicDriverEvents, 4)
	for _, e := range all {
		got[e.Key] = append(got[e.Key], e.ID)
	}
	total := len(all)
	if total != drivers*each+1 {
		t.Fatalf("read %d events, want %d", total, drivers*each+1)
	}
	for key, ids := range got {
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("%s out of order: %s after %s", key, ids[i], ids[i-1])
			}
		}
	}
	if ids := got["d0"]; ids[len(ids)-1] != "d0-zzz" {
		t.Fatalf("the acknowledged event is not last on its key: %v", ids[len(ids)-3:])
	}
}

// readTopic reads every event on topic's partitions, each in its order,
// stopping at a partition when nothing more arrives for half a second.
func readTopic(ctx context.Context, t *testing.T, brokers []string, topic string, partitions int) []events.Envelope {
	t.Helper()
	var out []events.Envelope
	for part := range partitions {
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: brokers, Topic: topic, Partition: part, MaxWait: 100 * time.Millisecond})
		for {
			rctx, rcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			m, err := r.ReadMessage(rctx)
			rcancel()
			if err != nil {
				break
			}
			rec, err := events.DecodeRecord(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range rec {
				if d.Err != nil {
					t.Fatal(d.Err)
				}
				out = append(out, d.Envelope)
			}
		}
		r.Close()
	}
	return out
}

// TestPublishBulk: relays sent in bulk arrive, each key in order, and
// driver events, whose order is kept by the other writers, are refused.
func TestPublishBulk(t *testing.T) {
	brokers := startBroker(t, 2, events.TopicUserPushes, events.TopicDriverEvents)
	p := NewProducer(brokers, 0)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var outs []events.Outgoing
	for i := range 60 {
		key := fmt.Sprintf("r%d", i%3)
		e, err := events.NewWithID(fmt.Sprintf("%s-%03d", key, i), events.TypePush, key, time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, events.Outgoing{Topic: events.TopicUserPushes, Env: e})
	}
	if err := p.PublishBulk(ctx, outs...); err != nil {
		t.Fatal(err)
	}
	got := readTopic(ctx, t, brokers, events.TopicUserPushes, 2)
	if len(got) != len(outs) {
		t.Fatalf("read %d events, want %d", len(got), len(outs))
	}
	last := map[string]string{}
	for _, e := range got {
		if e.ID <= last[e.Key] {
			t.Fatalf("key %s: %s after %s", e.Key, e.ID, last[e.Key])
		}
		last[e.Key] = e.ID
	}
	ping, err := events.New(events.TypeDriverLocation, "d1", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.PublishBulk(ctx, events.Outgoing{Topic: events.TopicDriverEvents, Env: ping}); err == nil {
		t.Fatal("a driver event was published in bulk")
	}
}

// BenchmarkPublishSmallBatches: what writing a few events costs when they
// do not fill a batch, as tripstate's relays (a handful per partition per
// call) and pings at a few thousand a second (a few dozen per partition
// per linger) do. kafka-go reserves room for BatchSize messages in every
// batch it starts, so B/op shows the writers' BatchSize.
func BenchmarkPublishSmallBatches(b *testing.B) {
	brokers := startBroker(b, 4, events.TopicUserPushes, events.TopicDriverEvents)
	ctx := context.Background()
	b.Run("relays-in-bulk", func(b *testing.B) {
		p := NewProducer(brokers, 0)
		defer p.Close()
		outs := make([]events.Outgoing, 8)
		for i := range outs {
			key := fmt.Sprintf("rider-%d", i)
			e, err := events.NewWithID(fmt.Sprintf("relay-%d", i), events.TypePush, key, time.Now(), protocol.Push{UserID: key, Message: []byte(`{"type":"driver.location"}`)})
			if err != nil {
				b.Fatal(err)
			}
			outs[i] = events.Outgoing{Topic: events.TopicUserPushes, Env: e}
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := p.PublishBulk(ctx, outs...); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("acknowledged-ping", func(b *testing.B) {
		p := NewProducerWith(ProducerConfig{Brokers: brokers})
		defer p.Close()
		e, err := events.New(events.TypeDriverLocation, "d1", time.Now(), ride.DriverLocation{DriverID: "d1", Lat: 52.52, Lng: 13.4})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := p.Publish(ctx, events.Outgoing{Topic: events.TopicDriverEvents, Env: e}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
