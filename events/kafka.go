package events

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
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
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: -1})
	}
	res, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics on %v: %w", brokers, err)
	}
	for t, err := range res.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
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
	w, pings *kafka.Writer
	// bulk carries many control events at once that nothing waits on in a
	// hurry (PublishBulk): in batches, apart from w's partition queues.
	bulk *kafka.Writer
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
func (p *Producer) pingsDone(msgs []kafka.Message, err error) {
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
	writer := func(linger time.Duration, batch int) *kafka.Writer {
		return &kafka.Writer{
			Addr:            kafka.TCP(cfg.Brokers...),
			Balancer:        &kafka.Hash{},
			RequiredAcks:    kafka.RequireAll,
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
func (p *Producer) Send(ctx context.Context, outs ...Outgoing) error {
	for _, o := range outs {
		if o.Topic != TopicDriverEvents {
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
func messages(outs []Outgoing) ([]kafka.Message, error) {
	msgs := make([]kafka.Message, len(outs))
	for i, o := range outs {
		b, err := encode(o.Env)
		if err != nil {
			return nil, err
		}
		msgs[i] = kafka.Message{Topic: o.Topic, Key: []byte(o.Env.Key), Value: b}
	}
	return msgs, nil
}

// writePings hands msgs to the pings writer once the queue has room; with
// a non-nil a, each message's completion is reported to it.
func (p *Producer) writePings(ctx context.Context, msgs []kafka.Message, a *acks) error {
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
func (p *Producer) publishPings(ctx context.Context, msgs []kafka.Message) error {
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
func (p *Producer) write(ctx context.Context, msgs []kafka.Message) error {
	var control, pings []kafka.Message
	for _, m := range msgs {
		if m.Topic == TopicDriverEvents {
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

// Publish writes the envelopes to topic and returns once the brokers have
// acknowledged all of them.
func (p *Producer) Publish(ctx context.Context, topic string, evs ...Envelope) error {
	if len(evs) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(evs))
	for i, e := range evs {
		b, err := encode(e)
		if err != nil {
			return err
		}
		msgs[i] = kafka.Message{Topic: topic, Key: []byte(e.Key), Value: b}
	}
	if err := p.write(ctx, msgs); err != nil {
		return fmt.Errorf("publish %d event(s) to %s: %w", len(evs), topic, err)
	}
	producedTotal.WithLabelValues(topic).Add(float64(len(evs)))
	return nil
}

// Outgoing is one envelope bound for a topic.
type Outgoing struct {
	Topic string
	Env   Envelope
}

// PublishAll writes envelopes bound for several topics in one batch and
// returns once the brokers have acknowledged all of them.
func (p *Producer) PublishAll(ctx context.Context, outs ...Outgoing) error {
	return publishOuts(ctx, outs, "", p.write)
}

// PublishBulk is PublishAll for many events at once on which no phone is
// waiting in a hurry (tripstate's relays of pings to riders). Control
// events go out one per batch so that none waits for a batch timer, and
// a batch holds up the next one of its partition: fifty relays sent that
// way are fifty round trips in a row, with the next offer for that
// partition behind them. PublishBulk sends them in batches, on a writer
// of their own.
func (p *Producer) PublishBulk(ctx context.Context, outs ...Outgoing) error {
	for _, o := range outs {
		if o.Topic == TopicDriverEvents {
			return errors.New("publish driver events in bulk: use Publish or Send, which keep their order")
		}
	}
	return publishOuts(ctx, outs, " in bulk", func(ctx context.Context, msgs []kafka.Message) error {
		return p.bulk.WriteMessages(ctx, msgs...)
	})
}

// publishOuts encodes outs, writes them with write and counts them once
// the brokers have acknowledged them; how names the way in errors.
func publishOuts(ctx context.Context, outs []Outgoing, how string, write func(context.Context, []kafka.Message) error) error {
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
	if err := p.write(ctx, []kafka.Message{{Topic: topic, Key: key, Value: value}}); err != nil {
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

// Handler applies one event. It must be idempotent: the consumer commits the
// offset only after the handler returns nil, so a crash in between
// redelivers the event. A permanent error (see Permanent) sends the event to
// the dead-letter topic; any other error is retried. Consume calls it
// concurrently for events of different partitions, and in order within one.
type Handler func(ctx context.Context, e Envelope) error

// BatchHandler applies several events of one partition, in their order, at
// once: what queued up while the previous batch was handled, so batches
// grow with the load and one round trip serves many events. The rules of
// Handler hold for the batch as a whole; when it returns a permanent
// error, its events are handled one at a time, so only the bad one is
// dead-lettered.
type BatchHandler func(ctx context.Context, es []Envelope) error

// How long the broker holds a fetch that has not got what it asked for:
// a Bulk consumer's fetch returns once it has bulkFetchBytes or after
// bulkFetchHold, any other once it has one event or after fetchHold.
//
// kafka-go does not send MaxWait to the broker as it is: it keeps back a
// round trip's margin, a whole second when MaxWait is over a second and a
// quarter of it below (MaxWait 250 ms: the broker held 187 ms and had 63 ms
// to answer), and a fetch answered after MaxWait is a timeout that closes
// the connection. A broker loop a few dozen milliseconds behind, which
// a loaded machine makes common, cost every consumer its connection at
// once: a few hundred reconnects in a 45 s run at 15,000 pings/s. MaxWait
// is therefore the hold plus fetchMargin.
const (
	bulkFetchBytes = 16 << 10
	bulkFetchHold  = 200 * time.Millisecond
	fetchHold      = 250 * time.Millisecond
	fetchMargin    = time.Second
)

// sessionTimeout outlasts a broker that stalls for 10 s (a pause, a long
// collection): the broker's session clocks run on while it is stalled, and
// with 10 s every member of every group was evicted when it came back, so
// every group rebalanced at once and nothing was read for about 9 s after
// the broker had returned (the fault run). Kafka's own default is 45 s.
const sessionTimeout = 20 * time.Second

// maxBatch bounds a BatchHandler's batch.
const maxBatch = 256

// ConsumerConfig describes one consumer-group member.
type ConsumerConfig struct {
	Brokers []string
	Group   string
	Topic   string
	// DeadLetters receives events the handler rejects permanently.
	DeadLetters *Producer
	Logger      *slog.Logger
	// Bulk marks a high-rate topic whose events may wait tens of
	// milliseconds (driver pings): each fetch waits for up to
	// bulkFetchBytes or bulkFetchHold instead of returning with the first
	// event, so the broker serves far fewer, fuller fetches. See
	// docs/loadtest.md for what it saved.
	Bulk bool
	// SessionTimeout bounds how long a killed member that is not started
	// again keeps its partitions (one started again takes them back within
	// rebalanceTimeout). Default sessionTimeout.
	SessionTimeout time.Duration
}

// Consume runs a consumer-group member until ctx ends. It fetches with
// FetchMessage and commits only after the handler has succeeded (kafka-go's
// ReadMessage commits before processing, which loses events on a crash).
// A new group starts at the first offset so nothing produced before the
// consumer first started is skipped.
func Consume(ctx context.Context, cfg ConsumerConfig, h Handler) error {
	return consume(ctx, newMember(cfg), func(ctx context.Context, c *member, msgs []kafka.Message) error {
		return c.handle(ctx, h, msgs[0])
	}, 1)
}

// ConsumeBatches is Consume for a BatchHandler.
func ConsumeBatches(ctx context.Context, cfg ConsumerConfig, h BatchHandler) error {
	return consume(ctx, newMember(cfg), func(ctx context.Context, c *member, msgs []kafka.Message) error {
		return c.handleBatch(ctx, h, msgs)
	}, maxBatch)
}

// apply handles messages of one partition until they are done with (handled
// or dead-lettered) or ctx ends.
type apply func(ctx context.Context, c *member, msgs []kafka.Message) error

// member is one consumer-group member: its settings, its logger and its
// metrics, whose label lookups are done once here rather than per event
// (a lookup hashes both labels and takes the vector's lock).
type member struct {
	cfg         ConsumerConfig
	log         *slog.Logger
	consumed    prometheus.Counter
	retries     prometheus.Counter
	deadLetters prometheus.Counter
	delay       prometheus.Observer
}

func newMember(cfg ConsumerConfig) *member {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &member{
		cfg:         cfg,
		log:         log.With("group", cfg.Group, "topic", cfg.Topic),
		consumed:    consumedTotal.WithLabelValues(cfg.Group, cfg.Topic),
		retries:     handlerRetries.WithLabelValues(cfg.Group, cfg.Topic),
		deadLetters: deadLettersTotal.WithLabelValues(cfg.Group, cfg.Topic),
		delay:       eventDelay.WithLabelValues(cfg.Group, cfg.Topic),
	}
}

// observeDelay records how late events reach the handler.
func (c *member) observeDelay(es ...Envelope) {
	now := time.Now()
	for _, e := range es {
		if !e.OccurredAt.IsZero() {
			c.delay.Observe(now.Sub(e.OccurredAt).Seconds())
		}
	}
}

func consume(ctx context.Context, c *member, h apply, batch int) error {
	cfg, log := c.cfg, c.log
	session := cmp.Or(cfg.SessionTimeout, sessionTimeout)
	minBytes, hold := 1, fetchHold
	if cfg.Bulk {
		minBytes, hold = bulkFetchBytes, bulkFetchHold
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           cfg.Brokers,
		GroupID:           cfg.Group,
		Topic:             cfg.Topic,
		StartOffset:       kafka.FirstOffset,
		MinBytes:          minBytes,
		MaxBytes:          10 << 20,
		MaxWait:           hold + fetchMargin,
		ReadBackoffMin:    5 * time.Millisecond,
		ReadBackoffMax:    100 * time.Millisecond,
		HeartbeatInterval: heartbeatInterval,
		SessionTimeout:    session,
		RebalanceTimeout:  rebalanceTimeout, // see owned.go
		JoinGroupBackoff:  500 * time.Millisecond,
		// Offsets are marked only after the handler succeeded, then committed
		// in the background; Close commits what is marked. A crash can
		// redeliver up to one interval of events, which handlers tolerate.
		CommitInterval: 100 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			log.Warn("kafka reader", "err", fmt.Sprintf(msg, args...))
		}),
	})
	defer func() {
		if err := r.Close(); err != nil {
			log.Warn("close kafka reader", "err", err)
		}
	}()
	// Each partition gets a worker of its own, so a slow handler on one
	// partition (a Redis round trip, a publish waiting for its ack) holds
	// up only that partition: order is per key, and a key lives on one
	// partition. Offsets are committed by the worker, in order.
	// Every return goes through workersErr, so no handler runs once Consume
	// has returned.
	g, gctx := errgroup.WithContext(ctx)
	workers := map[int]chan kafka.Message{}
	backoff := newBackoff()
	for {
		m, err := r.FetchMessage(gctx)
		if err != nil {
			if gctx.Err() != nil {
				return workersErr(ctx, g)
			}
			log.Warn("fetch", "err", err)
			if !backoff.wait(gctx) {
				return workersErr(ctx, g)
			}
			continue
		}
		backoff.reset()
		ch, ok := workers[m.Partition]
		if !ok {
			ch = make(chan kafka.Message, partitionQueue)
			workers[m.Partition] = ch
			g.Go(func() error {
				return work(gctx, c, h, batch, ch, func(ctx context.Context, msgs []kafka.Message) error {
					if err := r.CommitMessages(ctx, msgs...); err != nil {
						return fmt.Errorf("commit: %w", err)
					}
					return nil
				})
			})
		}
		select {
		case ch <- m:
		case <-gctx.Done():
			return workersErr(ctx, g)
		}
	}
}

// partitionQueue is how many fetched messages may wait for one partition's
// worker before the fetch loop waits for it.
const partitionQueue = maxBatch

// workersErr waits for the workers, which stop once gctx ends, and says why
// they stopped: nil when ctx ended (what was not committed goes to the next
// owner), else the first worker's error.
func workersErr(ctx context.Context, g *errgroup.Group) error {
	err := g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// work handles one partition's messages in order, up to batch at a time,
// calling done (which commits) with each batch after it is handled.
func work(ctx context.Context, c *member, h apply, batch int, ch <-chan kafka.Message, done func(context.Context, []kafka.Message) error) error {
	msgs := make([]kafka.Message, 0, batch)
	for {
		msgs = msgs[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-ch:
			msgs = append(msgs, m)
		}
	more:
		for len(msgs) < batch {
			select {
			case m := <-ch:
				msgs = append(msgs, m)
			default:
				break more
			}
		}
		if err := h(ctx, c, msgs); err != nil {
			return err // not committed: the next owner gets it again
		}
		if err := done(ctx, msgs); err != nil {
			last := msgs[len(msgs)-1]
			return fmt.Errorf("after %s/%d@%d: %w", last.Topic, last.Partition, last.Offset, err)
		}
	}
}

// handleBatch runs a BatchHandler on msgs until it succeeds or ctx ends; a
// permanent error, or an event that does not decode, sends the batch
// through one event at a time.
func (c *member) handleBatch(ctx context.Context, h BatchHandler, msgs []kafka.Message) error {
	one := func(ctx context.Context, e Envelope) error { return h(ctx, []Envelope{e}) }
	each := func() error {
		for _, m := range msgs {
			if err := c.handle(ctx, one, m); err != nil {
				return err
			}
		}
		return nil
	}
	es := make([]Envelope, 0, len(msgs))
	for _, m := range msgs {
		rec, err := DecodeRecord(m.Value)
		if err != nil {
			return each()
		}
		for _, d := range rec {
			if d.Err != nil {
				return each()
			}
			es = append(es, d.Envelope)
		}
	}
	c.observeDelay(es...)
	err := c.retry(ctx, msgs[0], len(es), func() error { return h(ctx, es) })
	if errors.Is(err, ErrPermanent) {
		return each()
	}
	return err
}

// handle runs the handler on one message until it succeeds, is dead-lettered,
// or ctx ends.
func (c *member) handle(ctx context.Context, h Handler, m kafka.Message) error {
	rec, err := DecodeRecord(m.Value) // its errors are permanent
	if err != nil {
		return c.deadLetter(ctx, m, err)
	}
	for _, d := range rec {
		err := d.Err
		if err == nil {
			e := d.Envelope
			c.observeDelay(e)
			err = c.retry(ctx, m, 1, func() error { return h(ctx, e) })
		}
		if errors.Is(err, ErrPermanent) {
			// Only this event of a batch record is dead-lettered.
			one := m
			if one.Value = d.Raw; one.Value == nil { // decoded in one pass with its batch
				b, encErr := encode(d.Envelope)
				if encErr != nil {
					return encErr
				}
				one.Value = b
			}
			err = c.deadLetter(ctx, one, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// retry runs try, the handling of n events from the message first and any
// after it, until it succeeds, fails for good (that error is returned) or
// ctx ends.
func (c *member) retry(ctx context.Context, first kafka.Message, n int, try func() error) error {
	backoff := newBackoff()
	for {
		err := try()
		if err == nil {
			c.consumed.Add(float64(n))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrPermanent) {
			return err
		}
		c.log.Warn("handler failed; retrying", "partition", first.Partition, "offset", first.Offset, "events", n, "err", err)
		c.retries.Inc()
		if !backoff.wait(ctx) {
			return ctx.Err()
		}
	}
}

func (c *member) deadLetter(ctx context.Context, m kafka.Message, reason error) error {
	cfg := c.cfg
	c.log.Error("dead-lettering event", "partition", m.Partition, "offset", m.Offset, "reason", reason)
	c.deadLetters.Inc()
	if cfg.DeadLetters == nil {
		return fmt.Errorf("no dead-letter producer for %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, reason)
	}
	dl := DeadLetter{Reason: reason.Error(), Group: cfg.Group, Topic: m.Topic, Partition: m.Partition,
		Offset: m.Offset, Key: string(m.Key), Value: string(m.Value)}
	env, err := NewWithID(fmt.Sprintf("dl-%s-%s-%d-%d", cfg.Group, m.Topic, m.Partition, m.Offset),
		TypeDeadLetter, string(m.Key), time.Now(), dl)
	if err != nil {
		return err
	}
	backoff := newBackoff()
	for {
		err := cfg.DeadLetters.Publish(ctx, TopicDeadLetters, env)
		if err == nil {
			return nil
		}
		c.log.Warn("publish dead letter; retrying", "err", err)
		if !backoff.wait(ctx) {
			return ctx.Err()
		}
	}
}

type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }
func (b *backoff) reset()  { b.d = 50 * time.Millisecond }

// maxBackoff caps the wait between tries. It is the longest a consumer may
// sleep on after its broker or Redis has come back: with 5 s, fetch loops
// that had failed through a 10 s broker pause slept up to 7 s more, and
// requests waited that long after the outage ended (the fault run). A try
// a second against a dependency that is away costs nothing to speak of.
const maxBackoff = time.Second

// wait sleeps for about the current delay (between half and one and a half
// times it, so members waiting on the same broker or Redis do not all come
// back at once) and doubles it up to maxBackoff; false if ctx ended.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.d/2 + rand.N(b.d))
	defer t.Stop()
	b.d = min(2*b.d, maxBackoff)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Retry calls try until it succeeds or ctx ends, logging each failure as
// what and waiting between tries as the consumers do (jittered, doubling to
// maxBackoff), so a service waiting on Redis or the broker at start-up comes
// back within a second of it and not in step with its replicas. It returns
// ctx's error if ctx ended first.
func Retry(ctx context.Context, log *slog.Logger, what string, try func() error) error {
	b := newBackoff()
	for {
		err := try()
		if err == nil || ctx.Err() != nil {
			return cmp.Or(ctx.Err(), err)
		}
		log.Warn(what+"; retrying", "err", err)
		if !b.wait(ctx) {
			return ctx.Err()
		}
	}
}
