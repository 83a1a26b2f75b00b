package kafka

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/hexride/hexride/events"
)

// How long the broker holds a fetch that has not got what it asked for:
// a Bulk route's fetch returns once it has bulkFetchBytes or after
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

// rebalanceTimeout is how long a rebalance waits for every member to rejoin.
// A member restarted after a crash joins while its dead self is still in the
// group, and nobody in the group reads until the rebalance stops waiting for
// the dead one: with 5 s, a killed tripstate stopped every trip for 5 s.
// A live member learns of a rebalance from its next heartbeat and rejoins
// at once (its handlers are quick), so a second and a half is enough.
const (
	rebalanceTimeout  = 1500 * time.Millisecond
	heartbeatInterval = 500 * time.Millisecond
)

// maxBatch bounds a Batch route's delivery.
const maxBatch = 256

// partitionQueue is how many fetched messages may wait for one partition's
// worker before the fetch loop waits for it.
const partitionQueue = maxBatch

// Subscriber reads routes from Kafka: a route with a Group as a member of
// that consumer group (with Owned, told of its partitions), a route without
// one as a reader of every partition from a time.
type Subscriber struct {
	Brokers []string
	Logger  *slog.Logger
	// SessionTimeout bounds how long a killed member that is not started
	// again keeps its partitions (one started again takes them back within
	// rebalanceTimeout). Default sessionTimeout.
	SessionTimeout time.Duration
}

// Subscribe reads r until ctx ends; see events.Subscriber.
func (s Subscriber) Subscribe(ctx context.Context, r events.Route, deliver func(context.Context, []events.Record) error) error {
	log := cmp.Or(s.Logger, slog.Default()).With("route", r.Name(), "topic", r.Topic)
	m := &member{sub: s, route: r, log: log, deliver: deliver, batch: 1}
	if r.Batch {
		m.batch = maxBatch
	}
	switch {
	case r.Group == "":
		return m.tail(ctx)
	case r.Owned != nil:
		return m.owned(ctx)
	default:
		return m.consume(ctx)
	}
}

// member is one route's reader.
type member struct {
	sub     Subscriber
	route   events.Route
	log     *slog.Logger
	deliver func(context.Context, []events.Record) error
	batch   int
}

func (c *member) fetchSettings() (minBytes int, maxWait time.Duration) {
	if c.route.Bulk {
		return bulkFetchBytes, bulkFetchHold + fetchMargin
	}
	return 1, fetchHold + fetchMargin
}

func (c *member) errorLogger(what string, args ...any) kafkago.Logger {
	return kafkago.LoggerFunc(func(msg string, a ...any) {
		c.log.Warn(what, append(args, "err", fmt.Sprintf(msg, a...))...)
	})
}

// consume runs a consumer-group member. It fetches with FetchMessage and
// commits only after the router is done with a message (kafka-go's
// ReadMessage commits before, which loses events on a crash). A new group
// starts at the first offset so nothing produced before the consumer first
// started is skipped.
func (c *member) consume(ctx context.Context) error {
	r, cfg := c.route, c.sub
	minBytes, maxWait := c.fetchSettings()
	rd := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:           cfg.Brokers,
		GroupID:           r.Group,
		Topic:             r.Topic,
		StartOffset:       kafkago.FirstOffset,
		MinBytes:          minBytes,
		MaxBytes:          10 << 20,
		MaxWait:           maxWait,
		ReadBackoffMin:    5 * time.Millisecond,
		ReadBackoffMax:    100 * time.Millisecond,
		HeartbeatInterval: heartbeatInterval,
		SessionTimeout:    cmp.Or(cfg.SessionTimeout, sessionTimeout),
		RebalanceTimeout:  rebalanceTimeout,
		JoinGroupBackoff:  500 * time.Millisecond,
		// Offsets are marked only after the router is done, then committed
		// in the background; Close commits what is marked. A crash can
		// redeliver up to one interval of events, which handlers tolerate.
		CommitInterval: 100 * time.Millisecond,
		ErrorLogger:    c.errorLogger("kafka reader"),
	})
	defer func() {
		if err := rd.Close(); err != nil {
			c.log.Warn("close kafka reader", "err", err)
		}
	}()
	// Each partition gets a worker of its own, so a slow handler on one
	// partition (a Redis round trip, a publish waiting for its ack) holds
	// up only that partition: order is per key, and a key lives on one
	// partition. Offsets are committed by the worker, in order.
	// Every return goes through workersErr, so no handler runs once
	// consume has returned.
	g, gctx := errgroup.WithContext(ctx)
	workers := map[int]chan kafkago.Message{}
	backoff := events.NewBackoff()
	for {
		m, err := rd.FetchMessage(gctx)
		if err != nil {
			if gctx.Err() != nil {
				return workersErr(ctx, g)
			}
			c.log.Warn("fetch", "err", err)
			if !backoff.Wait(gctx) {
				return workersErr(ctx, g)
			}
			continue
		}
		backoff.Reset()
		ch, ok := workers[m.Partition]
		if !ok {
			ch = make(chan kafkago.Message, partitionQueue)
			workers[m.Partition] = ch
			g.Go(func() error {
				return c.work(gctx, ch, func(ctx context.Context, msgs []kafkago.Message) error {
					if err := rd.CommitMessages(ctx, msgs...); err != nil {
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

// work delivers one partition's messages in order, up to c.batch at a time,
// calling done (which commits) with each batch once the router is done
// with it.
func (c *member) work(ctx context.Context, ch <-chan kafkago.Message, done func(context.Context, []kafkago.Message) error) error {
	msgs := make([]kafkago.Message, 0, c.batch)
	for {
		msgs = msgs[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-ch:
			msgs = append(msgs, m)
		}
	more:
		for len(msgs) < c.batch {
			select {
			case m := <-ch:
				msgs = append(msgs, m)
			default:
				break more
			}
		}
		if err := c.deliver(ctx, records(msgs)); err != nil {
			return err // not committed: the next owner gets it again
		}
		if err := done(ctx, msgs); err != nil {
			last := msgs[len(msgs)-1]
			return fmt.Errorf("after %s/%d@%d: %w", last.Topic, last.Partition, last.Offset, err)
		}
	}
}

func records(msgs []kafkago.Message) []events.Record {
	recs := make([]events.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = events.Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value}
	}
	return recs
}
