package events

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"
)

// Record is one message as the log holds it: one envelope, or a batch of
// them (driver.events carries pings many to a record).
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
}

// Subscriber reads a route's topic. It hands each partition's records to
// deliver in order, one at a time or, for a Batch route, as many as have
// queued up; once deliver returns nil those records are done with and may be
// committed, and an error from deliver stops the partition uncommitted.
// Package events/kafka has the Kafka one.
type Subscriber interface {
	Subscribe(ctx context.Context, r Route, deliver func(ctx context.Context, recs []Record) error) error
}

// Router runs routes: it decodes what a Subscriber reads, runs the route's
// handler through the middleware, publishes what the handler decided, and
// only then lets the Subscriber commit. It is the one place where events
// are retried, dead-lettered and published.
type Router struct {
	sub    Subscriber
	pub    Publisher
	log    *slog.Logger
	routes []Route
}

// NewRouter builds a router that reads with sub and publishes outputs and
// dead letters with pub.
func NewRouter(sub Subscriber, pub Publisher, log *slog.Logger) *Router {
	if log == nil {
		log = slog.Default()
	}
	return &Router{sub: sub, pub: pub, log: log}
}

// Add registers routes; Run starts them.
func (r *Router) Add(routes ...Route) { r.routes = append(r.routes, routes...) }

// Run runs every route until ctx ends or one fails.
func (r *Router) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, rt := range r.routes {
		g.Go(func() error { return r.run(ctx, rt) })
	}
	return g.Wait()
}

func (r *Router) run(ctx context.Context, rt Route) error {
	log := r.log.With("route", rt.Name(), "topic", rt.Topic)
	if rt.Prepare != nil {
		if err := Retry(ctx, log, "prepare "+rt.Name(), func() error { return rt.Prepare(ctx) }); err != nil {
			return nil // ctx ended
		}
	}
	pub := rt.Publisher
	if pub == nil {
		pub = r.pub
	}
	h := r.Chain(rt, pub, log)
	return r.sub.Subscribe(ctx, rt, func(ctx context.Context, recs []Record) error {
		es, dead := decodeRecords(rt, recs)
		if len(dead) > 0 {
			deadLettersTotal.WithLabelValues(rt.Name(), rt.Topic).Add(float64(len(dead)))
			log.Error("dead-lettering undecodable events", "count", len(dead), "partition", recs[0].Partition, "offset", recs[0].Offset)
			if err := publish(ctx, pub, log, dead); err != nil {
				return err
			}
		}
		if rt.Batch {
			if len(es) == 0 {
				return nil
			}
			_, err := h(ctx, es)
			return err
		}
		// One at a time, each through the whole chain: a record may carry
		// several events, and each is retried or dead-lettered alone.
		for i := range es {
			if _, err := h(ctx, es[i:i+1]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Chain is the handler of rt as the router runs it, from the outside in:
// the delay metric, de-duplication, the route's own middleware, publishing
// the outputs, dead-lettering what is refused for good, retrying what
// failed for now.
func (r *Router) Chain(rt Route, pub Publisher, log *slog.Logger) BatchHandler {
	h := Retrying(rt, log)(rt.Handler)
	h = DeadLettering(rt, log)(h)
	h = Publishing(pub, log)(h)
	for i := len(rt.Middleware) - 1; i >= 0; i-- {
		h = rt.Middleware[i](h)
	}
	if rt.Dedup > 0 {
		h = Deduplicating(rt, rt.Dedup)(h)
	}
	return Measuring(rt)(h)
}

// decodeRecords decodes recs into envelopes that know where they were read
// from, and dead letters for what does not decode.
func decodeRecords(rt Route, recs []Record) ([]Envelope, []Outgoing) {
	es := make([]Envelope, 0, len(recs))
	pos := make([]Position, len(recs))
	var dead []Outgoing
	for i, rec := range recs {
		pos[i] = Position{Partition: rec.Partition, Offset: rec.Offset}
		ds, err := DecodeRecord(rec.Value)
		if err != nil {
			dead = append(dead, deadLetter(rt, pos[i], "", rec.Key, rec.Value, err))
			continue
		}
		for _, d := range ds {
			if d.Err != nil {
				raw := d.Raw
				if raw == nil {
					raw, _ = encode(d.Envelope)
				}
				dead = append(dead, deadLetter(rt, pos[i], "", rec.Key, raw, d.Err))
				continue
			}
			e := d.Envelope
			e.Source = &pos[i]
			es = append(es, e)
		}
	}
	return es, dead
}

// deadLetter is the dead letter of one event (or undecodable record) read
// at p. Its id derives from where it was read, so reading it again (a
// redelivery, a view rebuilt on the next start) sends the same dead letter,
// not a new one.
func deadLetter(rt Route, p Position, eventID string, key, value []byte, reason error) Outgoing {
	id := fmt.Sprintf("dl-%s-%s-%d-%d", rt.Name(), rt.Topic, p.Partition, p.Offset)
	if eventID != "" {
		id += "-" + eventID
	}
	dl := DeadLetter{Reason: reason.Error(), Group: rt.Name(), Topic: rt.Topic, Partition: p.Partition,
		Offset: p.Offset, Key: string(key), Value: string(value)}
	env, err := NewWithID(id, TypeDeadLetter, string(key), time.Now(), dl)
	if err != nil {
		panic(err) // a DeadLetter always marshals
	}
	return Outgoing{Topic: TopicDeadLetters, Env: env}
}
