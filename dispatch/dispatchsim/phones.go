package dispatchsim

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/geo"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// phone is every phone of the simulation reading its pushes: a driver
// answers an offer after a think time, drives an accepted trip, and goes
// off duty once free after its shift. Riders only wait (and some cancel,
// on their own clock).
func (s *sim) phone(_ context.Context, e ev.Envelope) ([]ev.Outgoing, error) {
	var p protocol.Push
	if err := e.DecodePayload(&p); err != nil {
		return nil, err
	}
	d := s.drivers[p.UserID]
	if d == nil {
		return nil, nil // a rider's
	}
	var kind struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(p.Message, &kind); err != nil {
		return nil, ev.Permanent(fmt.Errorf("push %s: %w", e.ID, err))
	}
	switch kind.Type {
	case protocol.PushOffer:
		var o protocol.OfferMessage
		if err := json.Unmarshal(p.Message, &o); err != nil {
			return nil, ev.Permanent(err)
		}
		d.offers[o.TripID] = o
		think := time.Duration(s.rng.ExpFloat64() * float64(thinkMean))
		switch x := s.rng.Float64(); {
		case x < s.sc.AcceptProb:
			s.at(s.now.Add(think), func() { s.answer(d, o, ev.TypeOfferAccept) })
		case x < s.sc.AcceptProb+s.sc.IgnoreProb:
			// No answer: the dispatcher's expiry closes the offer.
		default:
			s.at(s.now.Add(think), func() { s.answer(d, o, ev.TypeOfferDecline) })
		}
	case protocol.PushTrip:
		var t protocol.TripMessage
		if err := json.Unmarshal(p.Message, &t); err != nil {
			return nil, ev.Permanent(err)
		}
		if t.State == ride.StateAccepted && t.DriverID == d.id && !d.driving[t.TripID] {
			d.driving[t.TripID] = true
			s.drive(d, t)
		}
		if t.State == ride.StateCompleted && t.DriverID == d.id {
			d.pos = geo.LatLng{Lat: t.Dropoff.Lat, Lng: t.Dropoff.Lng}
			s.publish(ev.TopicDriverEvents, ev.TypeDriverLocation, d.id, ride.DriverLocation{DriverID: d.id, Lat: d.pos.Lat, Lng: d.pos.Lng})
		}
		if !s.now.Before(d.shiftEnd) {
			s.shiftOver(d)
		}
	}
	return nil, nil
}

// answer is the driver's accept or decline of an offer.
func (s *sim) answer(d *driverState, o protocol.OfferMessage, typ string) {
	s.publish(ev.TopicTripCommands, typ, o.TripID, ride.TripCommand{TripID: o.TripID, UserID: d.id, Role: "driver", OfferID: o.OfferID})
}

// drive schedules the driver's steps of an accepted trip: to the pickup at
// the ETA of the offer's distance, boarding, then to the drop-off.
func (s *sim) drive(d *driverState, t protocol.TripMessage) {
	eta := s.cfg.ETA
	o := d.offers[t.TripID]
	delete(d.offers, t.TripID)
	pickup := geo.LatLng{Lat: t.Pickup.Lat, Lng: t.Pickup.Lng}
	dropoff := geo.LatLng{Lat: t.Dropoff.Lat, Lng: t.Dropoff.Lng}
	arrive := s.now.Add(eta.Pickup(o.PickupDistanceM))
	start := arrive.Add(boarding)
	done := start.Add(eta.Pickup(geo.DistanceM(pickup, dropoff)))
	step := func(typ string) func() {
		return func() {
			s.publish(ev.TopicTripCommands, typ, t.TripID, ride.TripCommand{TripID: t.TripID, UserID: d.id, Role: "driver"})
		}
	}
	s.at(arrive, step(ev.TypeTripArrive))
	s.at(start, step(ev.TypeTripStart))
	s.at(done, step(ev.TypeTripComplete))
}
