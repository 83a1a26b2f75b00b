package trip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/ride"
)

// Publisher sends the search deadlines the sweep decides (handlers return
// their events to the router instead). It returns once they are durable.
type Publisher interface {
	Publish(ctx context.Context, outs ...ev.Outgoing) error
}

// Service applies trip commands. Its handlers are idempotent: a command seen
// again (same event id) changes nothing and re-sends the same outputs, with
// the same ids, so that a crash between storing and publishing loses nothing
// and downstream de-duplication drops the copies.
type Service struct {
	store *Store
	pub   Publisher
	log   *slog.Logger
	// Deadline is how long after its request a trip still without a driver
	// is ended NO_DRIVERS by tripstate itself, whatever the dispatcher does.
	// It should exceed the dispatcher's search deadline plus one offer
	// timeout, so the dispatcher normally ends the search first.
	Deadline time.Duration
}

// DefaultDeadline is the search deadline plus the offer timeout, by default.
const DefaultDeadline = 70 * time.Second

// NewService builds the service.
func NewService(store *Store, pub Publisher, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{store: store, pub: pub, log: log, Deadline: DefaultDeadline}
}

var (
	transitionsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hexride_trip_transitions_total", Help: "Applied trip transitions, by resulting state.",
	}, []string{"state"})
	staleTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hexride_trip_stale_commands_total", Help: "Dispatcher commands ignored because the trip had moved on.",
	}, []string{"type"})
	duplicatesTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "hexride_trip_duplicate_commands_total", Help: "Commands seen again and not re-applied.",
	})
)

// HandleCommand applies one event from TopicTripCommands and returns the
// events the transition causes: the trip.updated event and the pushes to
// both phones. They are stored with the trip first, so a redelivered
// command returns them again, with the same ids.
func (s *Service) HandleCommand(ctx context.Context, e ev.Envelope) ([]ev.Outgoing, error) {
	if _, ok := commandTypes[e.Type]; !ok {
		return nil, ev.Permanent(fmt.Errorf("unknown trip command type %q", e.Type))
	}
	var cmd ride.TripCommand
	if err := e.DecodePayload(&cmd); err != nil {
		return nil, err
	}
	if cmd.TripID == "" {
		return nil, ev.Permanent(fmt.Errorf("%s %s has no trip_id", e.Type, e.ID))
	}
	// A stale version can only come from another writer racing on the same
	// trip (a rebalance); recompute from the fresh state a few times.
	for attempt := 0; attempt < 5; attempt++ {
		snap, err := s.store.snapshot(ctx, e.ID, cmd.TripID)
		if err != nil {
			return nil, err
		}
		if snap.applied {
			return s.replay(snap), nil
		}
		c, err := Decide(snap.trip, snap.exists, Command{Type: e.Type, ID: e.ID, At: e.OccurredAt, TripCommand: cmd})
		if err == nil && e.Type == ev.TypeRideRequest {
			c.deadline = e.OccurredAt.Add(s.Deadline)
		}
		if err != nil {
			return nil, s.rejected(e, cmd, err)
		}
		res, err := s.store.apply(ctx, c)
		if err == nil && res == riderBusy {
			// The gateway acked this request with its trip id (requests
			// sent at once all pass its check), so the trip must end where
			// the rider sees it: it is created already ended.
			c = refused(c, ReasonRiderBusy)
			res, err = s.store.apply(ctx, c)
		}
		if err != nil {
			return nil, err
		}
		switch res {
		case applied:
			transitionsTotal.WithLabelValues(c.Update.Trip.State).Inc()
			return c.Outputs(), nil
		case duplicate:
			continue // the next snapshot finds it applied and replays it
		case stale:
			continue
		case driverBusy:
			return nil, s.rejected(e, cmd, reject(CodeConflict, "driver %s is busy with another trip", c.driverID))
		}
	}
	return nil, fmt.Errorf("apply %s to trip %s: still racing after 5 attempts", e.Type, cmd.TripID)
}

// ReasonRiderBusy is the reason of a trip created CANCELLED because its
// rider already had an active trip.
const ReasonRiderBusy = "rider_busy"

// refused turns the creation c into the creation of a trip that has already
// ended (CANCELLED with reason) and touches nothing but the trip itself:
// not the rider's current trip, not the searching set.
func refused(c Transition, reason string) Transition {
	t := c.Update.Trip
	t.State, t.Reason = ride.StateCancelled, reason
	c.Update.Trip, c.riderOp, c.deadline = t, "-", time.Time{}
	return c
}

// rejected decides what an unappliable command becomes. A dispatcher command
// the trip has moved past (an expiry after the accept) is expected and
// ignored; anything else is dead-lettered with the reason, so it is on record
// and does not block the partition.
func (s *Service) rejected(e ev.Envelope, cmd ride.TripCommand, err error) error {
	var r *Rejection
	if !errors.As(err, &r) {
		return err
	}
	if e.Type == ev.TypeDispatchExpire || e.Type == ev.TypeDispatchOffer || e.Type == ev.TypeDispatchNoDrivers || e.Type == ev.TypeTripDeadline {
		staleTotal.WithLabelValues(e.Type).Inc()
		s.log.Debug("stale dispatcher command ignored", "type", e.Type, "trip", cmd.TripID, "reason", r.Reason)
		return nil
	}
	return ev.Permanent(fmt.Errorf("%s on trip %s: %w", e.Type, cmd.TripID, err))
}

// replay returns again the outputs of an event that was already applied, if
// the trip is still at the version that event made. (If the trip has moved
// on, the later transition was applied by a consumer that had already
// published this one's outputs: partitions are consumed in order.)
func (s *Service) replay(snap snapshot) []ev.Outgoing {
	duplicatesTotal.Inc()
	if !snap.exists || snap.last == nil || snap.last.Trip.Version != snap.appliedVersion {
		return nil
	}
	return outputs(*snap.last)
}

var commandTypes = map[string]struct{}{}

func init() {
	for _, t := range ev.TopicTypes[ev.TopicTripCommands] {
		commandTypes[t] = struct{}{}
	}
}
