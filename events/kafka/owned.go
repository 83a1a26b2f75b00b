package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/hexride/hexride/events"
)

// owned runs a consumer-group member for a route with per-partition state:
// it tells the route's Ownership which partitions it holds at every
// rebalance and when each has caught up, and commits no further than its
// Floor allows. It is meant for low-rate topics: every event may commit.
func (c *member) owned(ctx context.Context) error {
	cfg, r := c.sub, c.route
	own := *r.Owned
	session := cmp.Or(cfg.SessionTimeout, sessionTimeout)
	group, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID: r.Group, Brokers: cfg.Brokers, Topics: []string{r.Topic},
		StartOffset:       kafkago.FirstOffset,
		HeartbeatInterval: heartbeatInterval, SessionTimeout: session, RebalanceTimeout: rebalanceTimeout,
		JoinGroupBackoff: 500 * time.Millisecond,
		ErrorLogger:      c.errorLogger("kafka consumer group"),
	})
	if err != nil {
		return fmt.Errorf("join group %s: %w", r.Group, err)
	}
	defer func() {
		if err := group.Close(); err != nil {
			c.log.Warn("leave group", "err", err)
		}
	}()
	backoff := events.NewBackoff()
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("next generation", "err", err)
			if !backoff.Wait(ctx) {
				return nil
			}
			continue
		}
		backoff.Reset()
		assigned := gen.Assignments[r.Topic]
		parts := make([]int, len(assigned))
		for i, a := range assigned {
			parts[i] = a.ID
		}
		slices.Sort(parts)
		c.log.Info("partitions assigned", "generation", gen.ID, "partitions", parts)
		if own.Assigned != nil {
			own.Assigned(parts)
		}
		for _, a := range assigned {
			gen.Start(func(gctx context.Context) {
				// The generation's context ends at the next rebalance; ctx
				// at shutdown.
				pctx, cancel := context.WithCancel(ctx)
				defer cancel()
				stop := context.AfterFunc(gctx, cancel)
				defer stop()
				if err := c.ownPartition(pctx, gen, own, a); err != nil && pctx.Err() == nil {
					c.log.Warn("partition stopped; rejoining", "partition", a.ID, "err", err)
				}
			})
		}
	}
}

// ownPartition handles one assigned partition from its committed offset
// until ctx ends.
func (c *member) ownPartition(ctx context.Context, gen *kafkago.Generation, own events.Ownership, a kafkago.PartitionAssignment) error {
	cfg, topic := c.sub, c.route.Topic
	end, err := partitionEnd(ctx, cfg.Brokers, topic, a.ID)
	if err != nil {
		return err
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: cfg.Brokers, Topic: topic, Partition: a.ID,
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: fetchHold + fetchMargin,
		ReadBackoffMin: 5 * time.Millisecond, ReadBackoffMax: 100 * time.Millisecond,
		ErrorLogger: c.errorLogger("kafka reader", "partition", a.ID),
	})
	defer func() {
		if err := r.Close(); err != nil {
			c.log.Warn("close kafka reader", "partition", a.ID, "err", err)
		}
	}()
	if err := r.SetOffset(a.Offset); err != nil {
		return fmt.Errorf("start %s/%d at %d: %w", topic, a.ID, a.Offset, err)
	}
	behind := a.Offset >= 0 && a.Offset < end || a.Offset == kafkago.FirstOffset && end > 0
	if !behind && own.CaughtUp != nil {
		own.CaughtUp(a.ID)
	}
	committed := a.Offset
	backoff := events.NewBackoff()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("fetch", "partition", a.ID, "err", err)
			if !backoff.Wait(ctx) {
				return nil
			}
			continue
		}
		backoff.Reset()
		if err := c.deliver(ctx, records([]kafkago.Message{m})); err != nil {
			return err // not committed: the next owner gets it again
		}
		if behind && m.Offset >= end-1 {
			behind = false
			if own.CaughtUp != nil {
				own.CaughtUp(a.ID)
			}
		}
		next := m.Offset + 1
		if own.Floor != nil {
			next = min(next, own.Floor(a.ID, next))
		}
		if next <= committed {
			continue
		}
		if err := gen.CommitOffsets(map[string]map[int]int64{topic: {a.ID: next}}); err != nil {
			if errors.Is(err, kafkago.ErrGenerationEnded) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("commit %s/%d at %d: %w", topic, a.ID, next, err)
		}
		committed = next
	}
}

// partitionEnd is the offset the next event of a partition will take.
func partitionEnd(ctx context.Context, brokers []string, topic string, partition int) (int64, error) {
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	res, err := client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: {kafkago.LastOffsetOf(partition)}}})
	if err != nil {
		return 0, fmt.Errorf("end of %s/%d: %w", topic, partition, err)
	}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return 0, fmt.Errorf("end of %s/%d: %w", topic, partition, po.Error)
		}
		return po.LastOffset, nil
	}
	return 0, fmt.Errorf("end of %s/%d: no answer", topic, partition)
}
