package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// someTrips is a TripReader over fixed trips; rider r-1's active trip is
// t-offered.
type someTrips struct {
	trips map[string]ride.Trip
	err   error
}

func (s someTrips) Trip(_ context.Context, id string) (ride.Trip, bool, error) {
	t, ok := s.trips[id]
	return t, ok, s.err
}

func (s someTrips) CurrentTrip(_ context.Context, user, role string) (ride.Trip, bool, error) {
	if user == "r-1" {
		return s.trips["t-offered"], true, s.err
	}
	return ride.Trip{}, false, s.err
}

func (s someTrips) Ended(context.Context, []string) (map[string]bool, error) { return nil, s.err }

// TestPrecheckAnswersAsTripDecides: the precheck's answers are trip.Decide's
// refusals, under the contract's codes.
func TestPrecheckAnswersAsTripDecides(t *testing.T) {
	now := time.Now()
	offer := func(id string, expires time.Time) *ride.Offer {
		return &ride.Offer{OfferID: id, DriverID: "d-1", ExpiresAt: expires}
	}
	trips := map[string]ride.Trip{
		"t-offered": {TripID: "t-offered", State: ride.StateOffered, Version: 4, RiderID: "r-1",
			Offer: offer("o-1", now.Add(time.Minute)), Offered: []string{"d-0", "d-1"}},
		"t-expired": {TripID: "t-expired", State: ride.StateOffered, Version: 2, RiderID: "r-2",
			Offer: offer("o-2", now.Add(-time.Second)), Offered: []string{"d-1"}},
		"t-accepted": {TripID: "t-accepted", State: ride.StateAccepted, Version: 3, RiderID: "r-3",
			DriverID: "d-1", Offered: []string{"d-1"}},
		"t-done": {TripID: "t-done", State: ride.StateCompleted, Version: 6, RiderID: "r-4",
			DriverID: "d-1", Offered: []string{"d-1"}},
	}
	cases := []struct {
		name, user, role string
		f                protocol.Frame
		code             string // "" lets it through
	}{
		{"accept of the open offer", "d-1", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgOfferAccept, TripID: "t-offered", OfferID: "o-1"}, ""},
		{"decline of the open offer", "d-1", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgOfferDecline, TripID: "t-offered", OfferID: "o-1"}, ""},
		{"accept by a driver never offered", "d-9", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgOfferAccept, TripID: "t-offered", OfferID: "o-1"}, protocol.CodeForbidden},
		{"accept by a driver offered before", "d-0", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgOfferAccept, TripID: "t-offered", OfferID: "o-1"}, protocol.CodeConflict},
		{"accept of another offer", "d-1", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgOfferAccept, TripID: "t-offered", OfferID: "o-old"}, protocol.CodeConflict},
		{"accept after expiry", "d-1", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgOfferAccept, TripID: "t-expired", OfferID: "o-2"}, protocol.CodeConflict},
		{"decline after expiry", "d-1", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgOfferDecline, TripID: "t-expired", OfferID: "o-2"}, ""},
		{"accept of an accepted trip", "d-1", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgOfferAccept, TripID: "t-accepted", OfferID: "o-1"}, protocol.CodeConflict},
		{"no such trip", "d-1", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgOfferAccept, TripID: "t-none", OfferID: "o-1"}, protocol.CodeNotFound},
		{"cancel by the rider", "r-1", protocol.RoleRider, protocol.Frame{Type: protocol.MsgTripCancel, TripID: "t-offered"}, ""},
		{"cancel by another rider", "r-9", protocol.RoleRider, protocol.Frame{Type: protocol.MsgTripCancel, TripID: "t-offered"}, protocol.CodeForbidden},
		{"cancel by the offered driver is early", "d-1", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgTripCancel, TripID: "t-offered"}, protocol.CodeConflict},
		{"cancel by the driver", "d-1", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgTripCancel, TripID: "t-accepted", Reason: "flat tyre"}, ""},
		{"cancel of an ended trip", "r-4", protocol.RoleRider, protocol.Frame{Type: protocol.MsgTripCancel, TripID: "t-done"}, protocol.CodeConflict},
		{"cancel of someone's ended trip", "r-9", protocol.RoleRider, protocol.Frame{Type: protocol.MsgTripCancel, TripID: "t-done"}, protocol.CodeForbidden},
		{"arrive", "d-1", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgTripArrive, TripID: "t-accepted"}, ""},
		{"arrive before the accept is applied", "d-1", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgTripArrive, TripID: "t-offered"}, protocol.CodeConflict},
		{"arrive by another driver", "d-9", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgTripArrive, TripID: "t-accepted"}, protocol.CodeForbidden},
		{"start before arriving", "d-1", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgTripStart, TripID: "t-accepted"}, protocol.CodeConflict},
		{"complete twice", "d-1", protocol.RoleDriver, protocol.Frame{Type: protocol.MsgTripComplete, TripID: "t-done"}, protocol.CodeConflict},
		{"request with an active trip", "r-1", protocol.RoleRider, protocol.Frame{Type: protocol.MsgRideRequest}, protocol.CodeConflict},
		{"request without one", "r-5", protocol.RoleRider, protocol.Frame{Type: protocol.MsgRideRequest}, ""},
	}
	s := &Server{trips: someTrips{trips: trips}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			perr := s.precheck(context.Background(), &session{user: tc.user, role: tc.role}, tc.f)
			switch {
			case tc.code == "" && perr != nil:
				t.Fatalf("refused %s: %s, want it through", perr.Code, perr.Message)
			case tc.code != "" && perr == nil:
				t.Fatalf("let through, want %s", tc.code)
			case perr != nil && (perr.Code != tc.code || perr.Message == ""):
				t.Fatalf("refused %s: %q, want %s with a message", perr.Code, perr.Message, tc.code)
			}
		})
	}
	s.trips = someTrips{trips: trips, err: errors.New("redis down")}
	if perr := s.precheck(context.Background(), &session{user: "d-1", role: protocol.RoleDriver},
		protocol.Frame{Type: protocol.MsgTripArrive, TripID: "t-accepted"}); perr == nil || perr.Code != protocol.CodeUnavailable {
		t.Fatalf("with the store down: %v, want %s", perr, protocol.CodeUnavailable)
	}
}
