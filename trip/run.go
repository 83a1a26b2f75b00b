package trip

import (
	"context"
	"log/slog"

	"golang.org/x/sync/errgroup"

	ev "github.com/hexride/hexride/events"
)

// Consumer groups of tripstate.
const (
	GroupCommands  = "tripstate"
	GroupLocations = "tripstate-locations"
)

// Run consumes trip commands and driver pings until ctx ends.
func (s *Service) Run(ctx context.Context, brokers []string, dead *ev.Producer, log *slog.Logger) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return ev.Consume(ctx, ev.ConsumerConfig{Brokers: brokers, Group: GroupCommands, Topic: ev.TopicTripCommands,
			DeadLetters: dead, Logger: log}, s.HandleCommand)
	})
	g.Go(func() error {
		return ev.Consume(ctx, ev.ConsumerConfig{Brokers: brokers, Group: GroupLocations, Topic: ev.TopicDriverEvents,
			DeadLetters: dead, Logger: log}, s.HandleDriverEvent)
	})
	return g.Wait()
}
