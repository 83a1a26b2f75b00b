package kafka

import (
	"context"
	"fmt"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/hexride/hexride/events"
	"golang.org/x/sync/errgroup"
)

// tail reads the route's topic from its From to the end and then follows
// it, delivering each partition's events in order (a worker per
// partition), until ctx ends, in no consumer group: for a view that is
// rebuilt from the log on every start instead of resuming from a committed
// position. It commits nothing.
func (c *member) tail(ctx context.Context) error {
	r := c.route
	var from time.Time
	if r.From != nil {
		from = r.From()
	}
	var starts, ends map[int]int64
	backoff := events.NewBackoff()
	for {
		var err error
		if starts, ends, err = tailBounds(ctx, c.sub.Brokers, r.Topic, from); err == nil {
			break
		}
		c.log.Warn("find where to start reading", "err", err)
		if !backoff.Wait(ctx) {
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
		if left--; left == 0 && r.CaughtUp != nil {
			r.CaughtUp()
		}
	}
	if left == 0 && r.CaughtUp != nil {
		r.CaughtUp()
	}
	g, gctx := errgroup.WithContext(ctx)
	for p, start := range starts {
		end := ends[p]
		g.Go(func() error {
			behind := start < end
			return c.tailPartition(gctx, p, start, func(last int64) {
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
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	md, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, nil, fmt.Errorf("read metadata of %s: %w", topic, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return nil, nil, fmt.Errorf("read metadata of %s: %v", topic, md.Topics)
	}
	// Two requests: kafka-go files each answer by the timestamp the broker
	// sends back, and "no event at or after from" comes back as -1, which
	// it would take for the answer to the end query.
	var lasts, firsts []kafkago.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		lasts = append(lasts, kafkago.LastOffsetOf(p.ID))
		if from.IsZero() { // its millisecond would read as a special value
			firsts = append(firsts, kafkago.FirstOffsetOf(p.ID))
		} else {
			firsts = append(firsts, kafkago.TimeOffsetOf(p.ID, from))
		}
	}
	ask := func(reqs []kafkago.OffsetRequest) (map[int]kafkago.PartitionOffsets, error) {
		res, err := client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
		if err != nil {
			return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
		}
		out := map[int]kafkago.PartitionOffsets{}
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

// tailPartition reads one partition from start until ctx ends, delivering
// batches as consume does; handled reports the offset of the last
// event of each batch handled.
func (c *member) tailPartition(ctx context.Context, partition int, start int64, handled func(int64)) error {
	minBytes, maxWait := c.fetchSettings()
	topic := c.route.Topic
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: c.sub.Brokers, Topic: topic, Partition: partition,
		MinBytes: minBytes, MaxBytes: 10 << 20, MaxWait: maxWait,
		ReadBackoffMin: 5 * time.Millisecond, ReadBackoffMax: 100 * time.Millisecond,
		ErrorLogger: c.errorLogger("kafka reader", "partition", partition),
	})
	defer func() {
		if err := r.Close(); err != nil {
			c.log.Warn("close kafka reader", "partition", partition, "err", err)
		}
	}()
	if err := r.SetOffset(start); err != nil {
		return fmt.Errorf("start %s/%d at %d: %w", topic, partition, start, err)
	}
	ch := make(chan kafkago.Message, partitionQueue)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return c.work(gctx, ch, func(_ context.Context, msgs []kafkago.Message) error {
			handled(msgs[len(msgs)-1].Offset)
			return nil
		})
	})
	g.Go(func() error {
		backoff := events.NewBackoff()
		for {
			m, err := r.FetchMessage(gctx)
			if err != nil {
				if gctx.Err() != nil {
					return nil
				}
				c.log.Warn("fetch", "partition", partition, "err", err)
				if !backoff.Wait(gctx) {
					return nil
				}
				continue
			}
			backoff.Reset()
			select {
			case ch <- m:
			case <-gctx.Done():
				return nil
			}
		}
	})
	return g.Wait()
}
