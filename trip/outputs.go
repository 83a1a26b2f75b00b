package trip

import (
	"context"
	"encoding/json"
	"fmt"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// outputs are the events one applied transition causes, with ids derived from
// the trip and version so that re-sending them is recognisably the same:
// the trip.updated event, an `offer` push to a newly offered driver, and a
// `trip` push to the rider and to the driver attached to the trip (the
// offered driver while OFFERED, the assigned driver from ACCEPTED, and the
// driver whose offer this transition just closed).
func outputs(u ride.TripUpdated) []ev.Outgoing {
	t := u.Trip
	at := t.UpdatedAt
	var outs []ev.Outgoing
	add := func(topic, id, typ, key string, payload any) {
		env, err := ev.NewWithID(id, typ, key, at, payload)
		if err != nil {
			panic(err) // only our own structs are marshalled here
		}
		outs = append(outs, ev.Outgoing{Topic: topic, Env: env})
	}
	add(ev.TopicTripEvents, fmt.Sprintf("trip-%s-v%d", t.TripID, t.Version), ev.TypeTripUpdated, t.TripID, u)

	// Each push names its user as (role, id) and is keyed by that pair: the
	// rider is a rider and the driver a driver, even when both carry the
	// same id.
	push := func(role, user, kind string, msg any) {
		b, err := json.Marshal(msg)
		if err != nil {
			panic(err)
		}
		key := ride.UserKey(role, user)
		p := protocol.Push{UserID: user, Role: role, Message: b}
		if kind == protocol.PushOffer && len(t.Offered) == 1 {
			// A trip's first offer only: a re-offer's wait includes the
			// declines and expiries before it, which request→offer is not.
			p.RequestedAt = ev.FormatTime(t.RequestedAt)
		}
		add(ev.TopicUserPushes, fmt.Sprintf("push-%s-v%d-%s-%s", t.TripID, t.Version, kind, key), ev.TypePush, key, p)
	}
	if t.State == ride.StateOffered && t.Offer != nil {
		push(ride.RoleDriver, t.Offer.DriverID, protocol.PushOffer, protocol.NewOfferMessage(t, *t.Offer))
	}
	msg := protocol.NewTripMessage(t)
	push(ride.RoleRider, t.RiderID, protocol.PushTrip, msg)
	driver := t.DriverID
	switch {
	case driver != "":
	case t.Offer != nil:
		driver = t.Offer.DriverID
	case u.EndedOffer != nil:
		driver = u.EndedOffer.DriverID
	}
	if driver != "" {
		push(ride.RoleDriver, driver, protocol.PushTrip, msg)
	}
	return outs
}

// HandleDriverEvents forwards drivers' pings to the riders of the trips the
// drivers are busy with (from acceptance until the trip ends), as
// `driver.location` pushes: one Redis round trip for the whole batch, whose
// pushes are best published in bulk (see the routes in internal/platform).
// Other driver events are not tripstate's business.
func (s *Service) HandleDriverEvents(ctx context.Context, es []ev.Envelope) ([]ev.Outgoing, error) {
	type ping struct {
		e   ev.Envelope
		loc ride.DriverLocation
	}
	pings := make([]ping, 0, len(es))
	seen := map[string]bool{}
	var drivers []string
	for _, e := range es {
		switch e.Type {
		case ev.TypeDriverLocation:
		case ev.TypeDriverAvailability:
			continue
		default:
			return nil, ev.Permanent(fmt.Errorf("unknown driver event type %q", e.Type))
		}
		var loc ride.DriverLocation
		if err := e.DecodePayload(&loc); err != nil {
			return nil, err
		}
		pings = append(pings, ping{e, loc})
		if !seen[loc.DriverID] {
			seen[loc.DriverID] = true
			drivers = append(drivers, loc.DriverID)
		}
	}
	claims, err := s.store.DriverClaims(ctx, drivers)
	if err != nil || len(claims) == 0 {
		return nil, err
	}
	var outs []ev.Outgoing
	for _, p := range pings {
		c, ok := claims[p.loc.DriverID]
		if !ok {
			continue
		}
		msg, err := json.Marshal(protocol.DriverLocationMessage{Type: protocol.PushDriverLocation, TripID: c.TripID, Lat: p.loc.Lat, Lng: p.loc.Lng,
			Heading: p.loc.Heading, At: ev.FormatTime(p.e.OccurredAt)})
		if err != nil {
			return nil, fmt.Errorf("encode driver.location push: %w", err)
		}
		env, err := ev.NewWithID("loc-"+p.e.ID, ev.TypePush, ride.UserKey(ride.RoleRider, c.RiderID), p.e.OccurredAt,
			protocol.Push{UserID: c.RiderID, Role: ride.RoleRider, Message: msg})
		if err != nil {
			return nil, err
		}
		outs = append(outs, ev.Outgoing{Topic: ev.TopicUserPushes, Env: env})
	}
	return outs, nil
}
