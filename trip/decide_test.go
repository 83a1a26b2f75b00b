package trip

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/ride"
)

// In the fixtures of these tests the rider is r1; d1 was offered the trip
// (and, from ACCEPTED on, is its driver); d2 was never offered it; the
// open offer o1 expires at t0+10s and commands come at t0+2s.
var (
	offerExpires = t0.Add(10 * time.Second)
	cmdAt        = t0.Add(2 * time.Second)
	offerO1      = ride.Offer{OfferID: "o1", DriverID: "d1", PickupDistanceM: 300, ExpiresAt: offerExpires}
)

// tripIn returns trip t1 as it is in state, at version 5.
func tripIn(state string) ride.Trip {
	t := ride.Trip{TripID: "t1", State: state, Version: 5, RiderID: "r1", Pickup: *here, Dropoff: *there,
		Offered: []string{"d1"}, RequestedAt: t0, UpdatedAt: t0.Add(time.Second)}
	switch state {
	case ride.StateOffered:
		o := offerO1
		t.Offer = &o
	case ride.StateAccepted, ride.StateArrived, ride.StateInProgress, ride.StateCompleted:
		t.DriverID = "d1"
	}
	return t
}

// validCommand is a command of type typ that a trip in an allowing state
// takes: from the right sender, about the right offer.
func validCommand(typ string) Command {
	c := Command{Type: typ, ID: "e-" + typ, At: cmdAt, TripCommand: ride.TripCommand{TripID: "t1"}}
	switch typ {
	case ev.TypeRideRequest:
		c.UserID, c.Role, c.Pickup, c.Dropoff = "r1", "rider", here, there
	case ev.TypeDispatchOffer:
		c.OfferID, c.DriverID, c.PickupDistanceM, c.ExpiresAt = "o2", "d2", 450, cmdAt.Add(10*time.Second)
	case ev.TypeOfferAccept, ev.TypeOfferDecline:
		c.UserID, c.Role, c.OfferID = "d1", "driver", "o1"
	case ev.TypeDispatchExpire:
		c.OfferID = "o1"
	case ev.TypeTripCancel:
		c.UserID, c.Role = "r1", "rider"
	case ev.TypeTripArrive, ev.TypeTripStart, ev.TypeTripComplete:
		c.UserID, c.Role = "d1", "driver"
	}
	return c
}

var allStates = []string{ride.StateRequested, ride.StateOffered, ride.StateAccepted, ride.StateArrived,
	ride.StateInProgress, ride.StateCompleted, ride.StateCancelled, ride.StateNoDrivers}

// TestDecideEveryTransition applies every row of Transitions and checks the
// next trip, the update and what the store is told to do.
func TestDecideEveryTransition(t *testing.T) {
	type effect struct {
		reason            string
		claimOp, driverID string
		riderOp           string
		endsOffer         bool
	}
	// What each command does besides moving the state, from a trip as
	// tripIn makes it.
	effects := map[string]func(from string) effect{
		ev.TypeDispatchOffer: func(string) effect { return effect{claimOp: "-", riderOp: "-"} },
		ev.TypeOfferAccept:   func(string) effect { return effect{claimOp: "claim", driverID: "d1", riderOp: "-", endsOffer: true} },
		ev.TypeOfferDecline: func(string) effect {
			return effect{reason: "offer_declined", claimOp: "-", riderOp: "-", endsOffer: true}
		},
		ev.TypeDispatchExpire: func(string) effect {
			return effect{reason: "offer_expired", claimOp: "-", riderOp: "-", endsOffer: true}
		},
		ev.TypeDispatchNoDrivers: func(from string) effect {
			return effect{reason: "no_drivers", claimOp: "-", riderOp: "del", endsOffer: from == ride.StateOffered}
		},
		ev.TypeTripDeadline: func(from string) effect {
			return effect{reason: "no_drivers", claimOp: "-", riderOp: "del", endsOffer: from == ride.StateOffered}
		},
		ev.TypeTripCancel: func(from string) effect {
			e := effect{reason: "cancelled_by_rider", claimOp: "-", riderOp: "del", endsOffer: from == ride.StateOffered}
			if from != ride.StateRequested && from != ride.StateOffered {
				e.claimOp, e.driverID = "release", "d1"
			}
			return e
		},
		ev.TypeTripArrive:   func(string) effect { return effect{claimOp: "-", riderOp: "-"} },
		ev.TypeTripStart:    func(string) effect { return effect{claimOp: "-", riderOp: "-"} },
		ev.TypeTripComplete: func(string) effect { return effect{claimOp: "release", driverID: "d1", riderOp: "del"} },
	}
	rows := 0
	for from, m := range Transitions {
		for typ, to := range m {
			rows++
			t.Run(from+"/"+typ, func(t *testing.T) {
				cur := tripIn(from)
				before := tripIn(from)
				cmd := validCommand(typ)
				tr, err := Decide(cur, true, cmd)
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				if !reflect.DeepEqual(cur, before) {
					t.Fatalf("Decide changed its input:\n%+v\n%+v", before, cur)
				}
				u := tr.Update
				if u.Cause != typ || u.Trip.State != to || u.Trip.Version != cur.Version+1 || !u.Trip.UpdatedAt.Equal(cmd.At) {
					t.Fatalf("update %s: %s v%d at %s, want %s: %s v%d at %s", u.Cause, u.Trip.State, u.Trip.Version, u.Trip.UpdatedAt,
						typ, to, cur.Version+1, cmd.At)
				}
				if tr.from != cur.Version || tr.eventID != cmd.ID {
					t.Fatalf("from v%d event %q, want v%d %q", tr.from, tr.eventID, cur.Version, cmd.ID)
				}
				want := effects[typ](from)
				got := effect{reason: u.Trip.Reason, claimOp: tr.claimOp, driverID: tr.driverID, riderOp: tr.riderOp, endsOffer: u.EndedOffer != nil}
				if got != want {
					t.Fatalf("effect %+v, want %+v", got, want)
				}
				if want.endsOffer && *u.EndedOffer != offerO1 {
					t.Fatalf("ended offer %+v, want %+v", *u.EndedOffer, offerO1)
				}
				switch {
				case to == ride.StateOffered:
					o := u.Trip.Offer
					if o == nil || o.OfferID != "o2" || o.DriverID != "d2" || o.PickupDistanceM != 450 || !o.ExpiresAt.Equal(cmd.ExpiresAt) {
						t.Fatalf("offer %+v", o)
					}
					if !slices.Equal(u.Trip.Offered, []string{"d1", "d2"}) {
						t.Fatalf("offered %v", u.Trip.Offered)
					}
				case u.Trip.Offer != nil:
					t.Fatalf("%s trip keeps offer %+v", to, u.Trip.Offer)
				}
				if to == ride.StateAccepted && u.Trip.DriverID != "d1" {
					t.Fatalf("accepted trip has driver %q", u.Trip.DriverID)
				}
				if len(tr.Outputs()) == 0 || tr.Outputs()[0].Env.Type != ev.TypeTripUpdated {
					t.Fatalf("outputs %v do not start with trip.updated", tr.Outputs())
				}
			})
		}
	}
	if rows != 15 {
		t.Fatalf("%d transitions; this test knows the effects of 15", rows)
	}
}

func TestDecideRideRequestCreates(t *testing.T) {
	cmd := validCommand(ev.TypeRideRequest)
	tr, err := Decide(ride.Trip{}, false, cmd)
	if err != nil {
		t.Fatal(err)
	}
	want := ride.Trip{TripID: "t1", State: ride.StateRequested, Version: 1, RiderID: "r1", Pickup: *here, Dropoff: *there,
		RequestedAt: cmdAt, UpdatedAt: cmdAt}
	if !reflect.DeepEqual(tr.Update.Trip, want) || tr.Update.Cause != ev.TypeRideRequest {
		t.Fatalf("update %+v", tr.Update)
	}
	if tr.from != 0 || tr.riderOp != "set" || tr.claimOp != "-" || !Created(tr.Update.Trip.State, tr.Update.Trip.Reason) {
		t.Fatalf("from v%d rider %q claim %q", tr.from, tr.riderOp, tr.claimOp)
	}
}

// TestDecideRefusals covers every refusal code, in the order the checks
// run: a command wrong in several ways gets the first answer.
func TestDecideRefusals(t *testing.T) {
	with := func(typ string, f func(*Command)) Command {
		c := validCommand(typ)
		f(&c)
		return c
	}
	user := func(typ, u string) Command { return with(typ, func(c *Command) { c.UserID = u }) }
	as := func(typ, role, u string) Command {
		return with(typ, func(c *Command) { c.Role, c.UserID = role, u })
	}
	offeredToD2 := tripIn(ride.StateOffered)
	offeredToD2.Offered = []string{"d1", "d2"}
	offeredToD2.Offer = &ride.Offer{OfferID: "o2", DriverID: "d2", ExpiresAt: offerExpires}

	cases := []struct {
		name   string
		cur    ride.Trip
		exists bool
		cmd    Command
		code   string // "" for a permanent (bad input) error
	}{
		{"no such trip", ride.Trip{}, false, validCommand(ev.TypeTripArrive), CodeNotFound},
		{"no such trip, dispatcher", ride.Trip{}, false, validCommand(ev.TypeDispatchExpire), CodeNotFound},
		{"request for an existing trip", tripIn(ride.StateRequested), true, validCommand(ev.TypeRideRequest), CodeConflict},
		{"request without a pickup", ride.Trip{}, false, with(ev.TypeRideRequest, func(c *Command) { c.Pickup = nil }), ""},
		{"request without a rider", ride.Trip{}, false, user(ev.TypeRideRequest, ""), ""},
		{"offer without a driver", tripIn(ride.StateRequested), true, with(ev.TypeDispatchOffer, func(c *Command) { c.DriverID = "" }), ""},

		{"accept by a driver never offered", tripIn(ride.StateOffered), true, user(ev.TypeOfferAccept, "d2"), CodeForbidden},
		{"decline by a driver never offered", tripIn(ride.StateOffered), true, user(ev.TypeOfferDecline, "d2"), CodeForbidden},
		{"accept by the rider", tripIn(ride.StateOffered), true, user(ev.TypeOfferAccept, "r1"), CodeForbidden},
		{"accept without a sender", tripIn(ride.StateOffered), true, user(ev.TypeOfferAccept, ""), CodeForbidden},
		{"accept by a stranger of an accepted trip", tripIn(ride.StateAccepted), true, user(ev.TypeOfferAccept, "d2"), CodeForbidden},
		{"accept of another offer id", tripIn(ride.StateOffered), true, with(ev.TypeOfferAccept, func(c *Command) { c.OfferID = "o-old" }), CodeConflict},
		{"accept of the offer now open to another driver", offeredToD2, true, with(ev.TypeOfferAccept, func(c *Command) { c.OfferID = "o2" }), CodeConflict},
		{"decline of an offer that was open to them", offeredToD2, true, validCommand(ev.TypeOfferDecline), CodeConflict},
		{"accept after the offer closed", tripIn(ride.StateRequested), true, validCommand(ev.TypeOfferAccept), CodeConflict},
		{"accept after acceptance", tripIn(ride.StateAccepted), true, validCommand(ev.TypeOfferAccept), CodeConflict},
		{"accept after expiry", tripIn(ride.StateOffered), true, with(ev.TypeOfferAccept, func(c *Command) { c.At = offerExpires.Add(time.Millisecond) }), CodeConflict},

		{"cancel by a stranger", tripIn(ride.StateAccepted), true, user(ev.TypeTripCancel, "r2"), CodeForbidden},
		{"cancel by a stranger of an ended trip", tripIn(ride.StateCompleted), true, user(ev.TypeTripCancel, "r2"), CodeForbidden},
		{"cancel without a sender", tripIn(ride.StateRequested), true, user(ev.TypeTripCancel, ""), CodeForbidden},
		{"cancel by a driver who declined", tripIn(ride.StateRequested), true, as(ev.TypeTripCancel, "driver", "d1"), CodeForbidden},
		{"cancel by the offered driver is early", tripIn(ride.StateOffered), true, as(ev.TypeTripCancel, "driver", "d1"), CodeConflict},
		{"cancel in progress", tripIn(ride.StateInProgress), true, validCommand(ev.TypeTripCancel), CodeConflict},
		{"cancel twice", tripIn(ride.StateCancelled), true, validCommand(ev.TypeTripCancel), CodeConflict},
		{"arrive by a stranger", tripIn(ride.StateAccepted), true, user(ev.TypeTripArrive, "d2"), CodeForbidden},
		{"arrive by the rider", tripIn(ride.StateAccepted), true, user(ev.TypeTripArrive, "r1"), CodeForbidden},
		{"arrive without a sender", tripIn(ride.StateAccepted), true, user(ev.TypeTripArrive, ""), CodeForbidden},
		{"arrive by the offered driver is early", tripIn(ride.StateOffered), true, validCommand(ev.TypeTripArrive), CodeConflict},
		{"complete by the offered driver is early", tripIn(ride.StateOffered), true, validCommand(ev.TypeTripComplete), CodeConflict},
		{"start by a stranger before arrival", tripIn(ride.StateAccepted), true, user(ev.TypeTripStart, "d2"), CodeForbidden},
		{"start before arrival", tripIn(ride.StateAccepted), true, validCommand(ev.TypeTripStart), CodeConflict},
		{"complete twice", tripIn(ride.StateCompleted), true, validCommand(ev.TypeTripComplete), CodeConflict},

		// Identity is (role, id): the same id under the other role is a stranger.
		{"cancel by a driver carrying the rider's id", tripIn(ride.StateRequested), true, as(ev.TypeTripCancel, "driver", "r1"), CodeForbidden},
		{"cancel by a driver carrying the rider's id, accepted", tripIn(ride.StateAccepted), true, as(ev.TypeTripCancel, "driver", "r1"), CodeForbidden},
		{"cancel by a rider carrying the driver's id", tripIn(ride.StateAccepted), true, as(ev.TypeTripCancel, "rider", "d1"), CodeForbidden},
		{"cancel without a role", tripIn(ride.StateRequested), true, as(ev.TypeTripCancel, "", "r1"), CodeForbidden},
		{"accept by a rider carrying the offered driver's id", tripIn(ride.StateOffered), true, as(ev.TypeOfferAccept, "rider", "d1"), CodeForbidden},
		{"decline without a role", tripIn(ride.StateOffered), true, as(ev.TypeOfferDecline, "", "d1"), CodeForbidden},
		{"arrive by a rider carrying the driver's id", tripIn(ride.StateAccepted), true, as(ev.TypeTripArrive, "rider", "d1"), CodeForbidden},
		{"complete by a viewer carrying the driver's id", tripIn(ride.StateInProgress), true, as(ev.TypeTripComplete, "viewer", "d1"), CodeForbidden},
		{"request by a driver", ride.Trip{}, false, as(ev.TypeRideRequest, "driver", "r1"), CodeForbidden},

		{"second offer while one is open", tripIn(ride.StateOffered), true, validCommand(ev.TypeDispatchOffer), CodeConflict},
		{"offer to a driver offered before", tripIn(ride.StateRequested), true, with(ev.TypeDispatchOffer, func(c *Command) { c.DriverID = "d1" }), CodeConflict},
		{"expiry after the accept", tripIn(ride.StateAccepted), true, validCommand(ev.TypeDispatchExpire), CodeConflict},
		{"expiry of another offer", tripIn(ride.StateOffered), true, with(ev.TypeDispatchExpire, func(c *Command) { c.OfferID = "o-old" }), CodeConflict},
		{"no drivers after the accept", tripIn(ride.StateAccepted), true, validCommand(ev.TypeDispatchNoDrivers), CodeConflict},
		{"deadline after the end", tripIn(ride.StateNoDrivers), true, validCommand(ev.TypeTripDeadline), CodeConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkRefusal(t, tc.cur, tc.exists, tc.cmd, tc.code)
		})
	}
}

// TestDecideEveryIllegalPair sends every command the table does not allow
// in a state, from the sender that would be allowed elsewhere: it is
// refused as a conflict, or as forbidden where that sender is not a party
// in this state.
func TestDecideEveryIllegalPair(t *testing.T) {
	for _, state := range allStates {
		for _, typ := range ev.TopicTypes[ev.TopicTripCommands] {
			if _, ok := Next(state, typ); ok || typ == ev.TypeRideRequest {
				continue
			}
			t.Run(state+"/"+typ, func(t *testing.T) {
				cur := tripIn(state)
				code := CodeConflict
				switch typ {
				case ev.TypeTripArrive, ev.TypeTripStart, ev.TypeTripComplete:
					if cur.DriverID == "" && cur.Offer == nil {
						code = CodeForbidden // d1 declined or was never assigned
					}
				}
				checkRefusal(t, cur, true, validCommand(typ), code)
			})
		}
	}
}

// checkRefusal asserts Decide refuses cmd with code ("" for a permanent
// error) and leaves cur alone.
func checkRefusal(t *testing.T, cur ride.Trip, exists bool, cmd Command, code string) {
	t.Helper()
	before := fmt.Sprintf("%+v %v", cur, cur.Offered)
	tr, err := Decide(cur, exists, cmd)
	if err == nil {
		t.Fatalf("Decide allowed it: %s v%d", tr.Update.Trip.State, tr.Update.Trip.Version)
	}
	var r *Rejection
	switch {
	case code == "":
		if !errors.Is(err, ev.ErrPermanent) || errors.As(err, &r) {
			t.Fatalf("err = %v, want a permanent error", err)
		}
	case !errors.As(err, &r):
		t.Fatalf("err = %v (%T), want a rejection %s", err, err, code)
	case r.Code != code:
		t.Fatalf("rejected %s (%s), want %s", r.Code, r.Reason, code)
	case r.Reason == "":
		t.Fatal("rejection without a reason")
	}
	if !reflect.DeepEqual(tr, Transition{}) {
		t.Fatalf("a refusal returned a transition %+v", tr)
	}
	if after := fmt.Sprintf("%+v %v", cur, cur.Offered); after != before {
		t.Fatalf("Decide changed its input:\n%s\n%s", before, after)
	}
}
