package dispatchsim

import (
	"context"
	"errors"
	"fmt"
	"slices"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/ride"
	"github.com/hexride/hexride/trip"
)

// tripstate is tripstate's handler of trip.commands with its store in
// memory: trip.Decide applies the command, and what it returns (the
// trip.updated event, the pushes) is what the router publishes. On the way
// it checks the invariants every matching policy must keep, from what it
// has recorded of each driver.
func (s *sim) tripstate(_ context.Context, e ev.Envelope) ([]ev.Outgoing, error) {
	var cmd ride.TripCommand
	if err := e.DecodePayload(&cmd); err != nil {
		return nil, err
	}
	tr := s.trips[cmd.TripID]
	switch {
	case e.Type == ev.TypeRideRequest:
		tr = &tripState{}
	case tr == nil:
		return nil, ev.Permanent(fmt.Errorf("%s for unknown trip %s", e.Type, cmd.TripID))
	}
	if e.Type == ev.TypeDispatchOffer {
		s.checkOffer(tr, cmd)
	}
	x, err := trip.Decide(tr.t, tr.exists, trip.Command{Type: e.Type, ID: e.ID, At: e.OccurredAt, TripCommand: cmd})
	var r *trip.Rejection
	switch {
	case errors.As(err, &r):
		// A dispatcher command the trip has moved past, an answer to an
		// offer that closed meanwhile: refused, as tripstate refuses it.
		// A driver's own trip refused is a bug.
		if e.Type == ev.TypeTripArrive || e.Type == ev.TypeTripStart || e.Type == ev.TypeTripComplete {
			s.violate("%s by %s refused on trip %s in %s: %s", e.Type, cmd.UserID, cmd.TripID, tr.t.State, r.Reason)
		}
		return nil, nil
	case err != nil:
		return nil, err
	}
	if !tr.exists {
		s.trips[cmd.TripID] = tr
		s.order = append(s.order, cmd.TripID)
	}
	tr.t, tr.exists = x.Update.Trip, true
	s.record(tr, e, x.Update)
	return x.Outputs(), nil
}

// checkOffer is what must hold of every offer the dispatcher makes.
func (s *sim) checkOffer(tr *tripState, cmd ride.TripCommand) {
	d := s.drivers[cmd.DriverID]
	switch {
	case d == nil || !d.online:
		s.violate("offer of %s to offline driver %s", cmd.TripID, cmd.DriverID)
	case d.offer != "":
		s.violate("driver %s offered %s while holding an offer for %s", d.id, cmd.TripID, d.offer)
	case d.trip != "":
		s.violate("driver %s offered %s while on trip %s", d.id, cmd.TripID, d.trip)
	case slices.Contains(tr.t.Offered, d.id):
		s.violate("driver %s offered %s a second time", d.id, cmd.TripID)
	}
}

// record keeps what the transition u, caused by e, did to the drivers and
// to the figures.
func (s *sim) record(tr *tripState, e ev.Envelope, u ride.TripUpdated) {
	t := u.Trip
	if o := u.EndedOffer; o != nil {
		if d := s.drivers[o.DriverID]; d != nil && d.offer == t.TripID {
			d.offer = ""
		}
	}
	switch e.Type {
	case ev.TypeDispatchOffer:
		s.offers++
		s.drivers[t.Offer.DriverID].offer = t.TripID
	case ev.TypeDispatchExpire:
		s.expiries++
	case ev.TypeOfferDecline:
		s.declines++
	case ev.TypeOfferAccept:
		s.drivers[t.DriverID].trip = t.TripID
		tr.pickupM, tr.accepted = u.EndedOffer.PickupDistanceM, e.OccurredAt
	case ev.TypeTripComplete:
		s.drivers[t.DriverID].trip = ""
	}
}
