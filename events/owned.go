package events

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
)

// Ownership hooks a group member whose handler keeps state per partition
// (the dispatcher's open searches) into the group's assignments, so that
// state is rebuilt by whichever member owns a partition, on start and on
// every takeover.
type Ownership struct {
	// Assigned is called at the start of each generation with the
	// partitions the member now owns, before any of their events is
	// handled. State of any other partition belongs to another member now.
	Assigned func(partitions []int)
	// CaughtUp is called for an assigned partition once its events up to
	// where the partition ended at assignment are handled: before that,
	// the handler sees history it must not act on as if it were new.
	CaughtUp func(partition int)
	// Floor returns the offset to commit for a partition whose events are
	// handled up to next-1: the oldest event the next owner must read
	// again to rebuild the partition's state, or next if none. Nil commits
	// next.
	Floor func(partition int, next int64) int64
}

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

type positionKey struct{}

// Position is where an event was read from.
type Position struct {
	Partition int
	Offset    int64
}

// WithPosition is ctx carrying the position of the event handled under it.
func WithPosition(ctx context.Context, p Position) context.Context {
	return context.WithValue(ctx, positionKey{}, p)
}

// PositionOf returns the position of the event being handled, for handlers
// run by ConsumeOwned.
func PositionOf(ctx context.Context) (Position, bool) {
	p, ok := ctx.Value(positionKey{}).(Position)
	return p, ok
}

// ConsumeOwned is Consume for a handler with per-partition state: it runs a
// consumer-group member that tells own which partitions it holds at every
// rebalance and when each has caught up, passes each event's Position in
// the handler's context, and commits no further than own.Floor allows. It
// is meant for low-rate topics: every handled event may commit.
func ConsumeOwned(ctx context.Context, cfg ConsumerConfig, own Ownership, h Handler) error {
	c := newMember(cfg)
	session := cmp.Or(cfg.SessionTimeout, sessionTimeout)
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: cfg.Group, Brokers: cfg.Brokers, Topics: []string{cfg.Topic},
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: heartbeatInterval, SessionTimeout: session, RebalanceTimeout: rebalanceTimeout,
		JoinGroupBackoff: 500 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.log.Warn("kafka consumer group", "err", fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		return fmt.Errorf("join group %s: %w", cfg.Group, err)
	}
	defer func() {
		if err := group.Close(); err != nil {
			c.log.Warn("leave group", "err", err)
		}
	}()
	backoff := newBackoff()
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("next generation", "err", err)
			if !backoff.wait(ctx) {
				return nil
			}
			continue
		}
		backoff.reset()
		assigned := gen.Assignments[cfg.Topic]
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
				if err := c.ownPartition(pctx, gen, own, a, h); err != nil && pctx.Err() == nil {
					c.log.Warn("partition stopped; rejoining", "partition", a.ID, "err", err)
				}
			})
		}
	}
}

// ownPartition handles one assigned partition from its committed offset
// until ctx ends.
func (c *member) ownPartition(ctx context.Context, gen *kafka.Generation, own Ownership, a kafka.PartitionAssignment, h Handler) error {
	cfg := c.cfg
	end, err := partitionEnd(ctx, cfg.Brokers, cfg.Topic, a.ID)
	if err != nil {
		return err
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers, Topic: cfg.Topic, Partition: a.ID,
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: fetchHold + fetchMargin,
		ReadBackoffMin: 5 * time.Millisecond, ReadBackoffMax: 100 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.log.Warn("kafka reader", "partition", a.ID, "err", fmt.Sprintf(msg, args...))
		}),
	})
	defer func() {
		if err := r.Close(); err != nil {
			c.log.Warn("close kafka reader", "partition", a.ID, "err", err)
		}
	}()
	if err := r.SetOffset(a.Offset); err != nil {
		return fmt.Errorf("start %s/%d at %d: %w", cfg.Topic, a.ID, a.Offset, err)
	}
	behind := a.Offset >= 0 && a.Offset < end || a.Offset == kafka.FirstOffset && end > 0
	if !behind && own.CaughtUp != nil {
		own.CaughtUp(a.ID)
	}
	committed := a.Offset
	backoff := newBackoff()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("fetch", "partition", a.ID, "err", err)
			if !backoff.wait(ctx) {
				return nil
			}
			continue
		}
		backoff.reset()
		hctx := WithPosition(ctx, Position{Partition: m.Partition, Offset: m.Offset})
		if err := c.handle(hctx, h, m); err != nil {
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
		if err := gen.CommitOffsets(map[string]map[int]int64{cfg.Topic: {a.ID: next}}); err != nil {
			if errors.Is(err, kafka.ErrGenerationEnded) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("commit %s/%d at %d: %w", cfg.Topic, a.ID, next, err)
		}
		committed = next
	}
}

// partitionEnd is the offset the next event of a partition will take.
func partitionEnd(ctx context.Context, brokers []string, topic string, partition int) (int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(partition)}}})
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
