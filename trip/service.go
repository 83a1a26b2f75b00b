package trip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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

// rejection is a command that is well-formed but may not be applied.
type rejection struct{ reason string }

func (r *rejection) Error() string { return r.reason }

func reject(format string, args ...any) error {
	return &rejection{reason: fmt.Sprintf(format, args...)}
}

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
		c, err := decide(snap.trip, snap.exists, e, cmd)
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
			transitionsTotal.WithLabelValues(c.update.Trip.State).Inc()
			return outputs(c.update), nil
		case duplicate:
			continue // the next snapshot finds it applied and replays it
		case stale:
			continue
		case driverBusy:
			return nil, s.rejected(e, cmd, reject("driver %s is busy with another trip", c.driverID))
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
func refused(c change, reason string) change {
	t := c.update.Trip
	t.State, t.Reason = ride.StateCancelled, reason
	c.update.Trip, c.riderOp, c.deadline = t, "-", time.Time{}
	return c
}

// rejected decides what an unappliable command becomes. A dispatcher command
// the trip has moved past (an expiry after the accept) is expected and
// ignored; anything else is dead-lettered with the reason, so it is on record
// and does not block the partition.
func (s *Service) rejected(e ev.Envelope, cmd ride.TripCommand, err error) error {
	var r *rejection
	if !errors.As(err, &r) {
		return err
	}
	if e.Type == ev.TypeDispatchExpire || e.Type == ev.TypeDispatchOffer || e.Type == ev.TypeDispatchNoDrivers || e.Type == ev.TypeTripDeadline {
		staleTotal.WithLabelValues(e.Type).Inc()
		s.log.Debug("stale dispatcher command ignored", "type", e.Type, "trip", cmd.TripID, "reason", r.reason)
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

// decide computes the transition e makes on cur, or a rejection.
func decide(cur ride.Trip, exists bool, e ev.Envelope, cmd ride.TripCommand) (change, error) {
	at := e.OccurredAt
	if e.Type == ev.TypeRideRequest {
		if exists {
			return change{}, reject("trip %s already exists", cmd.TripID)
		}
		if cmd.UserID == "" || cmd.Pickup == nil || cmd.Dropoff == nil {
			return change{}, ev.Permanent(fmt.Errorf("ride.request %s lacks rider, pickup or dropoff", e.ID))
		}
		t := ride.Trip{TripID: cmd.TripID, State: ride.StateRequested, Version: 1, RiderID: cmd.UserID,
			Pickup: *cmd.Pickup, Dropoff: *cmd.Dropoff, RequestedAt: at, UpdatedAt: at}
		return change{eventID: e.ID, update: ride.TripUpdated{Trip: t, Cause: e.Type}, claimOp: "-", riderOp: "set"}, nil
	}
	if !exists {
		return change{}, reject("trip %s does not exist", cmd.TripID)
	}
	next, ok := Next(cur.State, e.Type)
	if !ok {
		return change{}, reject("%s is illegal in state %s", e.Type, cur.State)
	}
	t := cur
	t.Offered = slices.Clone(cur.Offered)
	t.State, t.Version, t.UpdatedAt, t.Reason = next, cur.Version+1, at, ""
	c := change{eventID: e.ID, from: cur.Version, claimOp: "-", riderOp: "-"}
	upd := ride.TripUpdated{Cause: e.Type}

	switch e.Type {
	case ev.TypeDispatchOffer:
		if cmd.DriverID == "" || cmd.OfferID == "" {
			return change{}, ev.Permanent(fmt.Errorf("dispatch.offer %s lacks driver or offer id", e.ID))
		}
		if slices.Contains(cur.Offered, cmd.DriverID) {
			return change{}, reject("trip %s was already offered to driver %s", cur.TripID, cmd.DriverID)
		}
		t.Offer = &ride.Offer{OfferID: cmd.OfferID, DriverID: cmd.DriverID, PickupDistanceM: cmd.PickupDistanceM, ExpiresAt: cmd.ExpiresAt}
		t.Offered = append(t.Offered, cmd.DriverID)
	case ev.TypeOfferAccept, ev.TypeOfferDecline:
		if cur.Offer == nil || cur.Offer.OfferID != cmd.OfferID {
			return change{}, reject("offer %s is not open", cmd.OfferID)
		}
		if cur.Offer.DriverID != cmd.UserID {
			return change{}, reject("offer %s is not for %s", cmd.OfferID, cmd.UserID)
		}
		upd.EndedOffer, t.Offer = cur.Offer, nil
		if e.Type == ev.TypeOfferAccept {
			if at.After(cur.Offer.ExpiresAt) {
				return change{}, reject("offer %s expired at %s", cmd.OfferID, ev.FormatTime(cur.Offer.ExpiresAt))
			}
			t.DriverID = cmd.UserID
			c.claimOp, c.driverID = "claim", cmd.UserID
		} else {
			t.Reason = "offer_declined"
		}
	case ev.TypeDispatchExpire:
		if cur.Offer == nil || cur.Offer.OfferID != cmd.OfferID {
			return change{}, reject("offer %s is not open", cmd.OfferID)
		}
		upd.EndedOffer, t.Offer, t.Reason = cur.Offer, nil, "offer_expired"
	case ev.TypeDispatchNoDrivers, ev.TypeTripDeadline:
		upd.EndedOffer, t.Offer, t.Reason = cur.Offer, nil, "no_drivers"
		c.riderOp = "del"
	case ev.TypeTripCancel:
		by := ""
		switch cmd.UserID {
		case cur.RiderID:
			by = "rider"
		case "":
		default:
			if cmd.UserID == cur.DriverID {
				by = "driver"
			}
		}
		if by == "" {
			return change{}, reject("%s is not the rider or driver of trip %s", cmd.UserID, cur.TripID)
		}
		t.Reason = "cancelled_by_" + by
		if cmd.Reason != "" {
			t.Reason += ": " + cmd.Reason
		}
		upd.EndedOffer, t.Offer = cur.Offer, nil
		c.riderOp = "del"
		if cur.DriverID != "" {
			c.claimOp, c.driverID = "release", cur.DriverID
		}
	case ev.TypeTripArrive, ev.TypeTripStart, ev.TypeTripComplete:
		if cmd.UserID != cur.DriverID {
			return change{}, reject("%s is not the driver of trip %s", cmd.UserID, cur.TripID)
		}
		if e.Type == ev.TypeTripComplete {
			c.riderOp = "del"
			c.claimOp, c.driverID = "release", cur.DriverID
		}
	}
	upd.Trip = t
	c.update = upd
	return c, nil
}
