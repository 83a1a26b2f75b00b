package events

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"
)

// TailConfig describes a reader of every partition of a topic from a point
// in time, in no consumer group: for a view that is rebuilt from the log on
// every start instead of resuming from a committed position.
type TailConfig struct {
	Brokers []string
	Topic   string
	// Name labels the reader's logs and metrics, as a group name would.
	Name string
	// From is the time of the oldest event to read: each partition starts
	// at its first event stamped at or after it by the broker. The zero
	// time reads everything the broker still holds.
	From time.Time
	// Bulk fetches as a Bulk consumer does (see ConsumerConfig).
	Bulk bool
	// DeadLetters receives events the handler rejects permanently. Their
	// ids derive from the position, so reading them again on the next
	// start sends the same dead letter again, not a new one.
	DeadLetters *Producer
	Logger      *slog.Logger
	// CaughtUp, if set, is called once every partition has been handled up
	// to where it ended when Tail started.
	CaughtUp func()
}

// Tail reads cfg.Topic from cfg.From to the end and then follows it, handing
// each partition's events to h in order (a worker per partition, as Consume
// does), until ctx ends. It commits nothing.
func Tail(ctx context.Context, cfg TailConfig, h BatchHandler) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	c := newMember(ConsumerConfig{Brokers: cfg.Brokers, Group: cfg.Name, Topic: cfg.Topic, DeadLetters: cfg.DeadLetters,
		Logger: log, Bulk: cfg.Bulk})
	var starts, ends map[int]int64
	backoff := newBackoff()
	for {
		var err error
		if starts, ends, err = tailBounds(ctx, cfg.Brokers, cfg.Topic, cfg.From); err == nil {
			break
		}
		c.log.Warn("find where to start reading", "err", err)
		if !backoff.wait(ctx) {
			return nil
		}
	}
	left := 0
	for p, end := range ends {
		if starts[p] < end {
			left++
		}
	}
	var mu sync.Mutex
	caughtUp := func() {
		mu.Lock()
		defer mu.Unlock()
		if left--; left == 0 && cfg.CaughtUp != nil {
			cfg.CaughtUp()
		}
	}
	if left == 0 && cfg.CaughtUp != nil {
		cfg.CaughtUp()
	}
	g, gctx := errgroup.WithContext(ctx)
	for p, start := range starts {
		end := ends[p]
		g.Go(func() error {
			behind := start < end
			return c.tailPartition(gctx, cfg, p, start, h, func(last int64) {
				if behind && last >= end-1 {
					behind = false
					caughtUp()
				}
			})
		})
	}
	return workersErr(ctx, g)
}

// tailBounds returns, for every partition of topic, the first offset
// stamped at or after from and the offset the next event will take.
func tailBounds(ctx context.Context, brokers []string, topic string, from time.Time) (starts, ends map[int]int64, err error) {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, nil, fmt.Errorf("read metadata of %s: %w", topic, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return nil, nil, fmt.Errorf("read metadata of %s: %v", topic, md.Topics)
	}
	// Two requests: kafka-go files each answer by the timestamp the broker
	// sends back, and "no event at or after from" comes back as -1, which
	// it would take for the answer to the end query.
	var lasts, firsts []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		lasts = append(lasts, kafka.LastOffsetOf(p.ID))
		if from.IsZero() { // its millisecond would read as a special value
			firsts = append(firsts, kafka.FirstOffsetOf(p.ID))
		} else {
			firsts = append(firsts, kafka.TimeOffsetOf(p.ID, from))
		}
	}
	ask := func(reqs []kafka.OffsetRequest) (map[int]kafka.PartitionOffsets, error) {
		res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
		if err != nil {
			return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
		}
		out := map[int]kafka.PartitionOffsets{}
		for _, po := range res.Topics[topic] {
			if po.Error != nil {
				return nil, fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error)
			}
			out[po.Partition] = po
		}
		return out, nil
	}
	endsBy, err := ask(lasts)
	if err != nil {
		return nil, nil, err
	}
	startsBy, err := ask(firsts)
	if err != nil {
		return nil, nil, err
	}
	starts, ends = map[int]int64{}, map[int]int64{}
	for p, po := range endsBy {
		end := po.LastOffset
		start := end // nothing stamped at or after from
		if from.IsZero() {
			start = startsBy[p].FirstOffset
		}
		for off := range startsBy[p].Offsets {
			if off >= 0 && off < start {
				start = off
			}
		}
		starts[p], ends[p] = max(start, 0), end
	}
	return starts, ends, nil
}

// tailPartition reads one partition from start until ctx ends, handling
// batches as ConsumeBatches does; handled reports the offset of the last
// event of each batch handled.
func (c *member) tailPartition(ctx context.Context, cfg TailConfig, partition int, start int64, h BatchHandler, handled func(int64)) error {
	minBytes, hold := 1, fetchHold
	if cfg.Bulk {
		minBytes, hold = bulkFetchBytes, bulkFetchHold
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers, Topic: cfg.Topic, Partition: partition,
		MinBytes: minBytes, MaxBytes: 10 << 20, MaxWait: hold + fetchMargin,
		ReadBackoffMin: 5 * time.Millisecond, ReadBackoffMax: 100 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.log.Warn("kafka reader", "partition", partition, "err", fmt.Sprintf(msg, args...))
		}),
	})
	defer func() {
		if err := r.Close(); err != nil {
			c.log.Warn("close kafka reader", "partition", partition, "err", err)
		}
	}()
	if err := r.SetOffset(start); err != nil {
		return fmt.Errorf("start %s/%d at %d: %w", cfg.Topic, partition, start, err)
	}
	ch := make(chan kafka.Message, partitionQueue)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return work(gctx, c, func(ctx context.Context, c *member, msgs []kafka.Message) error {
			return c.handleBatch(ctx, h, msgs)
		}, maxBatch, ch, func(_ context.Context, msgs []kafka.Message) error {
			handled(msgs[len(msgs)-1].Offset)
			return nil
		})
	})
	g.Go(func() error {
		backoff := newBackoff()
		for {
			m, err := r.FetchMessage(gctx)
			if err != nil {
				if gctx.Err() != nil {
					return nil
				}
				c.log.Warn("fetch", "partition", partition, "err", err)
				if !backoff.wait(gctx) {
					return nil
				}
				continue
			}
			backoff.reset()
			select {
			case ch <- m:
			case <-gctx.Done():
				return nil
			}
		}
	})
	return g.Wait()
}
