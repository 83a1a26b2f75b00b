package trip

import (
	"context"
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/ride"
)

// Consumer groups of tripstate.
const (
	GroupCommands  = "tripstate"
	GroupLocations = "tripstate-locations"
)

// Run ends overdue searches until ctx ends. The commands and the drivers'
// pings reach HandleCommand and HandleDriverEvents through the router (the
// routes are in internal/platform).
func (s *Service) Run(ctx context.Context) error { return s.sweep(ctx) }

// sweep ends, every second, the searches whose own deadline has passed, by
// putting a trip.deadline command on the trip's partition: it is applied by
// the same single writer as every other command, and its id is derived from
// the trip, so replicas sweeping at once produce one effect.
func (s *Service) sweep(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			ids, err := s.store.overdue(ctx, now, 500)
			if err != nil {
				s.log.Warn("sweep overdue searches", "err", err)
				continue
			}
			outs := make([]ev.Outgoing, 0, len(ids))
			for _, id := range ids {
				env, err := ev.NewWithID("deadline-"+id, ev.TypeTripDeadline, id, now, ride.TripCommand{TripID: id})
				if err != nil {
					return err
				}
				outs = append(outs, ev.Outgoing{Topic: ev.TopicTripCommands, Env: env})
			}
			if err := s.pub.Publish(ctx, outs...); err != nil && ctx.Err() == nil {
				s.log.Warn("publish search deadlines", "err", err)
			}
		}
	}
}
