package events

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Retrying retries a handler's transient failures, with jittered backoff,
// until it succeeds, fails for good (that error is returned) or ctx ends.
func Retrying(rt Route, log *slog.Logger) Middleware {
	consumed := consumedTotal.WithLabelValues(rt.Name(), rt.Topic)
	retries := handlerRetries.WithLabelValues(rt.Name(), rt.Topic)
	return func(next BatchHandler) BatchHandler {
		return func(ctx context.Context, es []Envelope) ([]Outgoing, error) {
			b := NewBackoff()
			for {
				outs, err := next(ctx, es)
				if err == nil {
					consumed.Add(float64(len(es)))
					return outs, nil
				}
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				if errors.Is(err, ErrPermanent) {
					return nil, err
				}
				first := es[0]
				args := []any{"event", first.ID, "events", len(es), "err", err}
				if first.Source != nil {
					args = append(args, "partition", first.Source.Partition, "offset", first.Source.Offset)
				}
				log.Warn("handler failed; retrying", args...)
				retries.Inc()
				if !b.Wait(ctx) {
					return nil, ctx.Err()
				}
			}
		}
	}
}

// DeadLettering turns a permanent failure into a dead letter, so the event
// is on record and does not block its partition. A batch that fails for
// good is handled again one event at a time, so only the bad event is
// dead-lettered.
func DeadLettering(rt Route, log *slog.Logger) Middleware {
	dead := deadLettersTotal.WithLabelValues(rt.Name(), rt.Topic)
	return func(next BatchHandler) BatchHandler {
		letter := func(e Envelope, err error) Outgoing {
			p := Position{Partition: -1, Offset: -1}
			if e.Source != nil {
				p = *e.Source
			}
			log.Error("dead-lettering event", "event", e.ID, "type", e.Type, "partition", p.Partition, "offset", p.Offset, "reason", err)
			dead.Inc()
			raw, encErr := encode(e)
			if encErr != nil {
				raw = e.Payload
			}
			return deadLetter(rt, p, e.ID, []byte(e.Key), raw, err)
		}
		return func(ctx context.Context, es []Envelope) ([]Outgoing, error) {
			outs, err := next(ctx, es)
			if !errors.Is(err, ErrPermanent) {
				return outs, err
			}
			if len(es) == 1 {
				return []Outgoing{letter(es[0], err)}, nil
			}
			outs = outs[:0]
			for i := range es {
				o, err := next(ctx, es[i:i+1])
				switch {
				case errors.Is(err, ErrPermanent):
					outs = append(outs, letter(es[i], err))
				case err != nil:
					return nil, err
				default:
					outs = append(outs, o...)
				}
			}
			return outs, nil
		}
	}
}

// Publishing publishes what the handler decided, retrying with backoff until
// it is durable or ctx ends, and returns nothing further: whatever wraps it
// sees an event only once its consequences are on the log.
func Publishing(pub Publisher, log *slog.Logger) Middleware {
	return func(next BatchHandler) BatchHandler {
		return func(ctx context.Context, es []Envelope) ([]Outgoing, error) {
			outs, err := next(ctx, es)
			if err != nil {
				return nil, err
			}
			return nil, publish(ctx, pub, log, outs)
		}
	}
}

// publish makes outs durable, retrying until it succeeds or ctx ends.
func publish(ctx context.Context, pub Publisher, log *slog.Logger, outs []Outgoing) error {
	if len(outs) == 0 {
		return nil
	}
	return Retry(ctx, log, "publish a handler's events", func() error { return pub.Publish(ctx, outs...) })
}

// Deduplicating drops events whose id was among the last n this route
// handled, before they reach the handler. The memory is the process's own,
// so it only saves work: handlers stay idempotent for what it does not
// remember (a restart, another replica). Placed outside Publishing, it
// remembers an event only once its outputs are durable.
func Deduplicating(rt Route, n int) Middleware {
	dropped := duplicatesDropped.WithLabelValues(rt.Name(), rt.Topic)
	seen := make(map[string]struct{}, n)
	ring := make([]string, 0, n)
	next := 0
	remember := func(id string) {
		if _, ok := seen[id]; ok {
			return
		}
		if len(ring) < n {
			ring = append(ring, id)
		} else {
			delete(seen, ring[next])
			ring[next] = id
			next = (next + 1) % n
		}
		seen[id] = struct{}{}
	}
	var mu sync.Mutex // one route's partitions are handled concurrently
	return func(h BatchHandler) BatchHandler {
		return func(ctx context.Context, es []Envelope) ([]Outgoing, error) {
			mu.Lock()
			fresh := es[:0:0]
			for _, e := range es {
				if _, ok := seen[e.ID]; ok {
					dropped.Inc()
					continue
				}
				fresh = append(fresh, e)
			}
			mu.Unlock()
			if len(fresh) == 0 {
				return nil, nil
			}
			outs, err := h(ctx, fresh)
			if err == nil {
				mu.Lock()
				for _, e := range fresh {
					remember(e.ID)
				}
				mu.Unlock()
			}
			return outs, err
		}
	}
}

// Measuring records how late events reach the route: the hops of produce,
// fetch and queueing before it.
func Measuring(rt Route) Middleware {
	delay := eventDelay.WithLabelValues(rt.Name(), rt.Topic)
	return func(next BatchHandler) BatchHandler {
		return func(ctx context.Context, es []Envelope) ([]Outgoing, error) {
			now := time.Now()
			for _, e := range es {
				if !e.OccurredAt.IsZero() {
					delay.Observe(now.Sub(e.OccurredAt).Seconds())
				}
			}
			return next(ctx, es)
		}
	}
}

// Backoff is the wait between tries, for the router and for a Subscriber's
// own loops: jittered, doubling, at most maxBackoff.
type Backoff struct{ d time.Duration }

// NewBackoff starts a Backoff at its shortest delay.
func NewBackoff() *Backoff { return &Backoff{d: minBackoff} }

// Reset makes the next wait the shortest again.
func (b *Backoff) Reset() { b.d = minBackoff }

const minBackoff = 50 * time.Millisecond

// maxBackoff caps the wait between tries. It is the longest a consumer may
// sleep on after its broker or Redis has come back: with 5 s, fetch loops
// that had failed through a 10 s broker pause slept up to 7 s more, and
// requests waited that long after the outage ended (the fault run). A try
// a second against a dependency that is away costs nothing to speak of.
const maxBackoff = time.Second

// Wait sleeps for about the current delay (between half and one and a half
// times it, so members waiting on the same broker or Redis do not all come
// back at once) and doubles it up to maxBackoff; false if ctx ended.
func (b *Backoff) Wait(ctx context.Context) bool {
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
// what and waiting between tries as the router does (jittered, doubling to
// maxBackoff), so a service waiting on Redis or the broker comes back within
// a second of it and not in step with its replicas. It returns ctx's error
// if ctx ended first.
func Retry(ctx context.Context, log *slog.Logger, what string, try func() error) error {
	b := NewBackoff()
	for {
		err := try()
		if err == nil || ctx.Err() != nil {
			return cmp.Or(ctx.Err(), err)
		}
		log.Warn(what+"; retrying", "err", err)
		if !b.Wait(ctx) {
			return ctx.Err()
		}
	}
}
