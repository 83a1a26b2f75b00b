package events

import (
	"context"
	"time"
)

// Handler decides what one event leads to: it returns the events to publish
// and changes nothing outside itself but the state it owns. It must be
// idempotent: the router commits the event only once the handler has
// returned and its outputs are durable, so a crash in between hands the
// event to a handler again. A permanent error (see Permanent) dead-letters
// the event; any other is retried.
type Handler func(ctx context.Context, e Envelope) ([]Outgoing, error)

// BatchHandler is a Handler for several events of one partition at once,
// in their order: what queued up while the previous batch was handled, so
// one round trip serves many events. Per-event handlers are run through
// One.
type BatchHandler func(ctx context.Context, es []Envelope) ([]Outgoing, error)

// Middleware wraps a handler with what every handler needs the same way
// (retries, dead letters, de-duplication, metrics), in the manner of
// watermill's router.
type Middleware func(BatchHandler) BatchHandler

// One runs h on each event of a batch in turn.
func One(h Handler) BatchHandler {
	return func(ctx context.Context, es []Envelope) ([]Outgoing, error) {
		var outs []Outgoing
		for _, e := range es {
			o, err := h(ctx, e)
			if err != nil {
				return nil, err
			}
			outs = append(outs, o...)
		}
		return outs, nil
	}
}

// Outgoing is one envelope bound for a topic.
type Outgoing struct {
	Topic string
	Env   Envelope
}

// Publisher makes events durable: Publish returns once every one of outs is
// acknowledged by the log.
type Publisher interface {
	Publish(ctx context.Context, outs ...Outgoing) error
}

// Position is where in the log an event was read from.
type Position struct {
	Partition int
	Offset    int64
}

// Ownership hooks a route whose handler keeps state per partition (the
// dispatcher's open searches) into the consumer group's assignments, so that
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

// Route is one way events enter a handler: a topic, how it is read, the
// handler, and where the handler's outputs go. internal/platform lists every
// route of the platform in one table.
type Route struct {
	Topic string
	// Group is the consumer group that shares the topic's partitions among
	// the service's replicas and remembers how far they got. Empty reads
	// the whole topic in no group, from From: a view rebuilt on every
	// start instead of resumed.
	Group string
	// Reader names a route without a group in logs, metrics and dead
	// letters.
	Reader string
	// From returns, when the route starts, the time of the oldest event a
	// groupless route reads (the zero time reads all the log holds).
	From func() time.Time
	// Prepare, if set, runs (retried until it succeeds) before the route
	// starts reading: a view first loads what the log alone cannot give it.
	Prepare func(ctx context.Context) error
	// CaughtUp, for a groupless route, is called once every partition has
	// been handled up to where it ended when reading started.
	CaughtUp func()
	// Owned, for a group route, tells the handler which partitions it owns.
	Owned *Ownership

	Handler BatchHandler
	// Batch hands the handler up to a few hundred queued events at once;
	// otherwise one at a time.
	Batch bool
	// Bulk marks a high-rate topic whose events may wait tens of
	// milliseconds (driver pings), so the log serves fewer, fuller fetches.
	Bulk bool
	// Publisher, if set, takes this route's outputs instead of the router's.
	Publisher Publisher
	// Dedup, if above zero, drops events whose id was among the last Dedup
	// this route handled (see Deduplicating).
	Dedup int
	// Middleware wraps the handler outside the router's publishing: it sees
	// an event handled only once the handler's outputs are durable.
	Middleware []Middleware
}

// Name is the route's group, or its reader name.
func (r Route) Name() string {
	if r.Group != "" {
		return r.Group
	}
	return r.Reader
}
