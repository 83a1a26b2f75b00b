package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hexride/hexride/events"
)

// The tests here were written when consumers were run by hand; these run
// the same promises through the router, as the platform does, so each test
// reads as before: a route of one handler, publishing and dead-lettering
// with DeadLetters.

type ConsumerConfig struct {
	Brokers        []string
	Group          string
	Topic          string
	DeadLetters    *Producer
	Bulk           bool
	SessionTimeout time.Duration
}

type TailConfig struct {
	Brokers  []string
	Topic    string
	Name     string
	From     time.Time
	Bulk     bool
	CaughtUp func()
}

func route(ctx context.Context, brokers []string, session time.Duration, pub *Producer, rt events.Route) error {
	var p events.Publisher = refuse{}
	if pub != nil {
		p = pub
	}
	r := events.NewRouter(Subscriber{Brokers: brokers, SessionTimeout: session}, p, nil)
	r.Add(rt)
	return r.Run(ctx)
}

func quiet(h func(context.Context, events.Envelope) error) events.Handler {
	return func(ctx context.Context, e events.Envelope) ([]events.Outgoing, error) { return nil, h(ctx, e) }
}

func Consume(ctx context.Context, cfg ConsumerConfig, h func(context.Context, events.Envelope) error) error {
	return route(ctx, cfg.Brokers, cfg.SessionTimeout, cfg.DeadLetters,
		events.Route{Group: cfg.Group, Topic: cfg.Topic, Bulk: cfg.Bulk, Handler: events.One(quiet(h))})
}

func ConsumeBatches(ctx context.Context, cfg ConsumerConfig, h func(context.Context, []events.Envelope) error) error {
	return route(ctx, cfg.Brokers, cfg.SessionTimeout, cfg.DeadLetters, events.Route{Group: cfg.Group, Topic: cfg.Topic,
		Bulk: cfg.Bulk, Batch: true, Handler: func(ctx context.Context, es []events.Envelope) ([]events.Outgoing, error) {
			return nil, h(ctx, es)
		}})
}

func ConsumeOwned(ctx context.Context, cfg ConsumerConfig, own events.Ownership, h func(context.Context, events.Envelope) error) error {
	return route(ctx, cfg.Brokers, cfg.SessionTimeout, cfg.DeadLetters,
		events.Route{Group: cfg.Group, Topic: cfg.Topic, Owned: &own, Handler: events.One(quiet(h))})
}

func Tail(ctx context.Context, cfg TailConfig, h func(context.Context, []events.Envelope) error) error {
	return route(ctx, cfg.Brokers, 0, nil, events.Route{Reader: cfg.Name, Topic: cfg.Topic, Bulk: cfg.Bulk, Batch: true,
		From: func() time.Time { return cfg.From }, CaughtUp: cfg.CaughtUp,
		Handler: func(ctx context.Context, es []events.Envelope) ([]events.Outgoing, error) { return nil, h(ctx, es) }})
}

// refuse is the publisher of a route that must publish nothing.
type refuse struct{}

func (refuse) Publish(_ context.Context, outs ...events.Outgoing) error {
	return fmt.Errorf("nothing should be published here, got %d event(s)", len(outs))
}

// counter reads a counter of the events package by name and labels.
func counter(t *testing.T, name, group, topic string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["group"] == group && labels["topic"] == topic {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
