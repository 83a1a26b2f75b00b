// Package kafka is events' Publisher and Subscriber on Apache Kafka, through
// segmentio/kafka-go: a producer whose acknowledgement means durable, and
// consumer-group members (and readers in no group, for views rebuilt from
// the log) that hand each partition to the router in order and commit what
// it has done with. The same code talks to a real cluster and to the
// development broker.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/hexride/hexride/events"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// ParseBrokers splits a comma-separated broker list, dropping blanks.
func ParseBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// EnsureTopics creates the topics that do not exist yet. Services call it at
// start-up so that a fresh cluster (or the embedded broker) works without a
// separate provisioning step; existing topics are left as they are.
func EnsureTopics(ctx context.Context, brokers []string, partitions int, topics ...string) error {
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	req := &kafkago.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafkago.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: -1})
	}
	res, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics on %v: %w", brokers, err)
	}
	for t, err := range res.Errors {
		if err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	return nil
}

// Producer publishes envelopes. It is safe for concurrent use; concurrent
// Publish calls share batches.
type Producer struct {
	// w carries the control events (trip commands, trip events, pushes),
	// whose every millisecond of linger is on a rider's wait; pings carries
	// driver events, which are many and gain from fuller batches. pings is
	// asynchronous so that Send need not wait: a caller that must know its
	// event is durable waits for its messages' completion (see acks).
	w, pings *kafkago.Writer
	// bulk carries many control events at once that nothing waits on in a
	// hurry (PublishBulk): in batches, apart from w's partition queues.
	bulk *kafkago.Writer
	// batch gathers driver events into the pings writer's records.
	batch *pingBatcher
	// queued bounds the driver events written but not yet acknowledged:
	// Send and Publish wait for room, so a broker that falls behind slows
	// the sockets instead of growing the heap.
	queued *semaphore.Weighted
	log    *slog.Logger
}

// kafka-go allocates room for BatchSize messages (152 bytes each) in every
// batch it starts, however few it then holds, so a batch size far above what
// a batch carries is garbage on every write: with 1000 it was half of all the
// platform allocated at 2,000 pings/s, and each garbage collection takes one
// of the two cores for tens of milliseconds (docs/loadtest.md, item 16).
//
//   - pingBatch: the most driver events in one record (pingBatcher): one
//     partition's pings in one linger. 15,000 pings/s over 4 partitions in
//     50 ms is about 190; a fuller window is sent as two records. The
//     record itself goes to the pings writer, which sends each at once.
//   - bulkBatch: one PublishBulk call's relays for one partition, a handful
//     to a few dozen (what a bulk fetch of pings holds for busy drivers).
const (
	pingBatch = 256
	bulkBatch = 64
)

// maxQueuedPings bounds Producer.queued: a few seconds of pings from tens
// of thousands of drivers, at about 300 bytes each.
const maxQueuedPings = 50_000

// acks collects the completions of one synchronous write to the pings
// writer; it travels in each message's WriterData.
type acks struct {
	mu   sync.Mutex
	left int
	err  error
	done chan error
}

func (a *acks) complete(n int, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil && a.err == nil {
		a.err = err
	}
	if a.left -= n; a.left == 0 {
		a.done <- a.err
	}
}

// pingsDone is the pings writer's Completion: it frees their room in the
// queue, answers the synchronous writers, and reports what Send lost.
func (p *Producer) pingsDone(msgs []kafkago.Message, err error) {
	var n, lost int
	byAcks := map[*acks]int{}
	for _, m := range msgs {
		for _, e := range m.WriterData.(*batchRecord).events {
			n++
			if e.a != nil {
				byAcks[e.a]++
			} else if err != nil {
				lost++
			} else {
				producedTotal.WithLabelValues(m.Topic).Inc()
			}
		}
	}
	p.queued.Release(int64(n))
	for a, n := range byAcks {
		a.complete(n, err)
	}
	if lost > 0 {
		sendsLost.Add(float64(lost))
		p.log.Warn("driver events lost", "events", lost, "err", err)
	}
}

// ProducerConfig tunes a Producer.
type ProducerConfig struct {
	Brokers []string
	// Linger is how long a batch of control events waits for company before
	// it is sent; 0 (the default) sends each at once, in a batch of its
	// own. A ride request crosses four such batches before its offer
	// reaches a driver, and a batch timer, however short, waits for the
	// scheduler to notice it: docs/loadtest.md has the figures.
	Linger time.Duration
	// PingLinger is the same for driver events. Pings are most of the
	// traffic, and fuller batches cost the broker and the gateway less per
	// ping: the platform lingers 50ms on them (docs/loadtest.md).
	PingLinger time.Duration
	// Logger reports driver events that Send lost (default slog.Default()).
	Logger *slog.Logger
}

// NewProducer builds a producer whose batches all linger for at most linger.
func NewProducer(brokers []string, linger time.Duration) *Producer {
	return NewProducerWith(ProducerConfig{Brokers: brokers, Linger: linger, PingLinger: linger})
}

// NewProducerWith builds a producer with the settings the platform relies
// on, each of which differs from kafka-go's default:
//   - RequiredAcks all: an ack to a phone means the event is durable
//     (the default, none, acknowledges nothing);
//   - Hash balancer: one key always lands on one partition, which is what
//     keeps a driver's pings and a trip's commands in order (the default is
//     round-robin);
//   - BatchTimeout of a millisecond or a few: the default, 1 s, makes every
//     lone synchronous write wait a second.
func NewProducerWith(cfg ProducerConfig) *Producer {
	// Without a linger, each control event is a batch of its own, sent at
	// once: kafka-go sends a batch when it is full or its timer fires, and
	// even a 1ns timer waits for a scheduler to notice it, up to
	// milliseconds on busy cores. Batches of one cost a produce request
	// each; control events are few next to pings.
	controlBatch := 1000
	if cfg.Linger <= 0 {
		cfg.Linger = time.Nanosecond // kafka-go reads 0 as its default, 1s
		controlBatch = 1
	}
	if cfg.PingLinger <= 0 {
		cfg.PingLinger = time.Nanosecond
	}
	writer := func(linger time.Duration, batch int) *kafkago.Writer {
		return &kafkago.Writer{
			Addr:            kafkago.TCP(cfg.Brokers...),
			Balancer:        &kafkago.Hash{},
			RequiredAcks:    kafkago.RequireAll,
			BatchTimeout:    linger,
			BatchSize:       batch,
			MaxAttempts:     5,
			WriteBackoffMin: 20 * time.Millisecond,
			WriteBackoffMax: 500 * time.Millisecond,
		}
	}
	p := &Producer{w: writer(cfg.Linger, controlBatch), pings: writer(time.Nanosecond, 1), bulk: writer(time.Nanosecond, bulkBatch),
		queued: semaphore.NewWeighted(maxQueuedPings), log: cfg.Logger}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.pings.Async = true
	p.pings.Completion = p.pingsDone
	p.pings.Balancer = &batchBalancer{}
	p.batch = &pingBatcher{brokers: cfg.Brokers, linger: cfg.PingLinger, w: p.pings, done: p.pingsDone}
	return p
}

// Send queues driver events and returns without waiting for the broker: for
// what the contract calls fire and forget (a location without an id), where
// the next ping supersedes a lost one. Order per key is kept, with Publish's
// driver events too. A failure is logged and counted, not returned; only a
// full queue makes Send wait.
func (p *Producer) Send(ctx context.Context, outs ...events.Outgoing) error {
	for _, o := range outs {
		if o.Topic != events.TopicDriverEvents {
			return fmt.Errorf("send %s to %s: only driver events are sent without an ack", o.Env.ID, o.Topic)
		}
	}
	msgs, err := messages(outs)
	if err != nil {
		return err
	}
	return p.writePings(ctx, msgs, nil)
}

// messages encodes outs for kafka-go.
func messages(outs []events.Outgoing) ([]kafkago.Message, error) {
	msgs := make([]kafkago.Message, len(outs))
	for i, o := range outs {
		b, err := o.Env.Marshal()
		if err != nil {
			return nil, err
		}
		msgs[i] = kafkago.Message{Topic: o.Topic, Key: []byte(o.Env.Key), Value: b}
	}
	return msgs, nil
}

// writePings hands msgs to the pings writer once the queue has room; with
// a non-nil a, each message's completion is reported to it.
func (p *Producer) writePings(ctx context.Context, msgs []kafkago.Message, a *acks) error {
	n := int64(len(msgs))
	if n > maxQueuedPings {
		return fmt.Errorf("write %d driver events at once: at most %d", n, maxQueuedPings)
	}
	if err := p.queued.Acquire(ctx, n); err != nil {
		return fmt.Errorf("wait for room to write driver events: %w", err)
	}
	if err := p.batch.add(ctx, msgs, a); err != nil {
		p.queued.Release(n) // refused before queueing: no completion follows
		return err
	}
	return nil
}

// publishPings writes msgs to the pings writer and waits for the broker.
func (p *Producer) publishPings(ctx context.Context, msgs []kafkago.Message) error {
	a := &acks{left: len(msgs), done: make(chan error, 1)}
	if err := p.writePings(ctx, msgs, a); err != nil {
		return err
	}
	select {
	case err := <-a.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// write sends msgs through the writer for their topics and returns once all
// are acknowledged.
func (p *Producer) write(ctx context.Context, msgs []kafkago.Message) error {
	var control, pings []kafkago.Message
	for _, m := range msgs {
		if m.Topic == events.TopicDriverEvents {
			pings = append(pings, m)
		} else {
			control = append(control, m)
		}
	}
	switch {
	case len(pings) == 0:
		return p.w.WriteMessages(ctx, control...)
	case len(control) == 0:
		return p.publishPings(ctx, pings)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.w.WriteMessages(gctx, control...) })
	g.Go(func() error { return p.publishPings(gctx, pings) })
	return g.Wait()
}

// Publish writes envelopes bound for any topics in one batch and returns
// once the brokers have acknowledged all of them.
func (p *Producer) Publish(ctx context.Context, outs ...events.Outgoing) error {
	return publishOuts(ctx, outs, "", p.write)
}

// Bulk is the producer as a Publisher of PublishBulk.
func (p *Producer) Bulk() events.Publisher { return bulk{p} }

type bulk struct{ p *Producer }

func (b bulk) Publish(ctx context.Context, outs ...events.Outgoing) error {
	return b.p.PublishBulk(ctx, outs...)
}

// PublishBulk is Publish for many events at once on which no phone is
// waiting in a hurry (tripstate's relays of pings to riders). Control
// events go out one per batch so that none waits for a batch timer, and
// a batch holds up the next one of its partition: fifty relays sent that
// way are fifty round trips in a row, with the next offer for that
// partition behind them. PublishBulk sends them in batches, on a writer
// of their own.
func (p *Producer) PublishBulk(ctx context.Context, outs ...events.Outgoing) error {
	for _, o := range outs {
		if o.Topic == events.TopicDriverEvents {
			return errors.New("publish driver events in bulk: use Publish or Send, which keep their order")
		}
	}
	return publishOuts(ctx, outs, " in bulk", func(ctx context.Context, msgs []kafkago.Message) error {
		return p.bulk.WriteMessages(ctx, msgs...)
	})
}

// publishOuts encodes outs, writes them with write and counts them once
// the brokers have acknowledged them; how names the way in errors.
func publishOuts(ctx context.Context, outs []events.Outgoing, how string, write func(context.Context, []kafkago.Message) error) error {
	if len(outs) == 0 {
		return nil
	}
	msgs, err := messages(outs)
	if err != nil {
		return err
	}
	if err := write(ctx, msgs); err != nil {
		return fmt.Errorf("publish %d event(s)%s: %w", len(outs), how, err)
	}
	for _, o := range outs {
		producedTotal.WithLabelValues(o.Topic).Inc()
	}
	return nil
}

// PublishRaw writes one message as is; used for dead letters and tests.
func (p *Producer) PublishRaw(ctx context.Context, topic string, key, value []byte) error {
	if err := p.write(ctx, []kafkago.Message{{Topic: topic, Key: key, Value: value}}); err != nil {
		return fmt.Errorf("publish raw message to %s: %w", topic, err)
	}
	producedTotal.WithLabelValues(topic).Inc()
	return nil
}

// Close flushes and closes the producer.
func (p *Producer) Close() error {
	p.batch.close()
	return errors.Join(p.w.Close(), p.bulk.Close(), p.pings.Close())
}
