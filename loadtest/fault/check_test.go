package fault

import (
	"reflect"
	"testing"
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/loadtest/sim"
	"github.com/hexride/hexride/ride"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// wholeRide is the announced life of one completed trip of rider r with driver d,
// starting at minute m.
func wholeRide(id, r, d string, m int) []TripEvent {
	at := func(s int) time.Time { return t0.Add(time.Duration(m)*time.Minute + time.Duration(s)*time.Second) }
	states := []struct {
		s, d string
	}{{ride.StateRequested, ""}, {ride.StateOffered, ""}, {ride.StateAccepted, d}, {ride.StateArrived, d},
		{ride.StateInProgress, d}, {ride.StateCompleted, d}}
	var out []TripEvent
	for i, s := range states {
		out = append(out, TripEvent{Trip: ride.Trip{TripID: id, State: s.s, Version: int64(i + 1), RiderID: r,
			DriverID: s.d, UpdatedAt: at(i)}})
	}
	return out
}

// clean is a correct history of two rides by one driver, one after the
// other, each seen in full by its rider.
func clean() History {
	h := History{Store: Store{Trips: map[string]StoredTrip{}, Claims: map[string]string{},
		Reservations: map[string]Reservation{}, RiderTrips: map[string]string{}}}
	for i, id := range []string{"t1", "t2"} {
		r := "r" + id
		evs := wholeRide(id, r, "d1", i)
		h.TripEvents = append(h.TripEvents, evs...)
		last := evs[len(evs)-1].Trip
		h.Store.Trips[id] = StoredTrip{V: last.Version, Trip: last}
		h.Requests = append(h.Requests, sim.RequestRecord{Rider: r, TripID: id, Acked: true, FinalState: last.State,
			Outcome: "ended"})
		for j, e := range evs {
			h.Pushes = append(h.Pushes, sim.PushRecord{User: r, Seq: int64(j + 1), TripID: id, State: e.Trip.State,
				Version: e.Trip.Version})
			h.LogPushes = append(h.LogPushes, LogPush{User: r, TripID: id, State: e.Trip.State, Version: e.Trip.Version})
		}
	}
	// A re-announcement of a transition (tripstate after a crash) is not a
	// repeat.
	h.TripEvents = append(h.TripEvents, h.TripEvents[2])
	return h
}

func TestCheckCleanHistoryCountsNothing(t *testing.T) {
	c := Check(clean())
	if c.SafetyTotal() != 0 {
		t.Fatalf("clean history: %+v", c)
	}
	if c.InfoTrips != 2 || c.InfoRequests != 2 {
		t.Errorf("sized %d trips, %d requests; want 2, 2", c.InfoTrips, c.InfoRequests)
	}
}

// TestCheckCountsEachViolation breaks a clean history in one way at a time
// and wants exactly the one count that names it to move.
func TestCheckCountsEachViolation(t *testing.T) {
	cases := []struct {
		field   string
		breakIt func(h *History)
	}{
		{"AckedWithoutTrip", func(h *History) {
			h.Requests = append(h.Requests, sim.RequestRecord{Rider: "r9", TripID: "t9", Acked: true, Outcome: "unfinished"})
		}},
		{"AcceptedNeverEnded", func(h *History) {
			// t2 stops at ARRIVED in the log and the store; its rider is
			// left out (the rider's side is NotTerminal's case).
			h.TripEvents = append(wholeRide("t1", "rt1", "d1", 0), wholeRide("t2", "rt2", "d1", 1)[:4]...)
			h.Store.Trips["t2"] = StoredTrip{V: 4, Trip: h.TripEvents[len(h.TripEvents)-1].Trip}
			h.Requests, h.Pushes, h.LogPushes = h.Requests[:1], nil, nil
		}},
		{"DriverInTwoTrips", func(h *History) {
			h.TripEvents = append(h.TripEvents, shift(wholeRide("t3", "rt3", "d1", 0), 2*time.Second)...)
			h.Store.Trips["t3"] = StoredTrip{V: 6, Trip: h.TripEvents[len(h.TripEvents)-1].Trip}
		}},
		{"TripWithTwoDrivers", func(h *History) {
			for i := range h.TripEvents {
				if e := &h.TripEvents[i]; e.Trip.TripID == "t1" && e.Trip.Version >= 5 {
					e.Trip.DriverID = "d2"
				}
			}
			h.Store.Trips["t1"] = StoredTrip{V: 6, Trip: h.TripEvents[5].Trip}
		}},
		{"IllegalTransitions", func(h *History) {
			h.TripEvents[3].Trip.State = ride.StateCompleted // ACCEPTED → COMPLETED → IN_PROGRESS
			for i := range h.Pushes {
				if h.Pushes[i].TripID == "t1" && h.Pushes[i].Version == 4 {
					h.Pushes[i].State = ride.StateCompleted
					h.LogPushes[i].State = ride.StateCompleted
				}
			}
		}},
		{"VersionGaps", func(h *History) {
			h.Store.Trips["t1"] = StoredTrip{V: 7, Trip: h.Store.Trips["t1"].Trip}
		}},
		{"VersionRepeats", func(h *History) {
			e := h.TripEvents[1]
			e.Trip.State = ride.StateCancelled
			h.TripEvents = append(h.TripEvents, e)
		}},
		{"PushesTwice", func(h *History) {
			p := h.Pushes[2]
			p.Seq = 99
			h.Pushes = append(h.Pushes, p)
		}},
		{"PushesNeverStored", func(h *History) {
			h.Pushes = append(h.Pushes, sim.PushRecord{User: "rt1", Seq: 50, TripID: "t1", State: ride.StateArrived, Version: 9})
		}},
		{"NotTerminal", func(h *History) {
			st := h.Store.Trips["t2"]
			st.Trip.State = ride.StateRequested // stored ahead of nothing: same version, other state
			h.Store.Trips["t2"] = st
		}},
		{"Unanswered", func(h *History) {
			h.Requests = append(h.Requests, sim.RequestRecord{Rider: "r8", Outcome: "unanswered"})
		}},
		{"LeftoverClaims", func(h *History) { h.Store.Claims["d1"] = "t1" }},
		{"LeftoverReservations", func(h *History) {
			h.Store.Reservations["d1"] = Reservation{TripID: "t2", TTL: -1}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			h := clean()
			tc.breakIt(&h)
			c := Check(h)
			v := reflect.ValueOf(c)
			if v.FieldByName(tc.field).Int() == 0 {
				t.Errorf("%s not counted: %+v", tc.field, c)
			}
			// A trip left unended is also counted per trip, whoever asked
			// for it: allowed alongside.
			allowed := map[string]bool{tc.field: true, "TripsNotTerminal": true}
			for _, kv := range []string{"AckedWithoutTrip", "AcceptedNeverEnded", "DriverInTwoTrips", "TripWithTwoDrivers",
				"IllegalTransitions", "VersionGaps", "VersionRepeats", "PushesTwice", "PushesNeverStored", "NotTerminal",
				"Unanswered", "LeftoverClaims", "LeftoverReservations"} {
				if !allowed[kv] && v.FieldByName(kv).Int() != 0 {
					t.Errorf("breaking %s also counted %s=%d (examples %v)", tc.field, kv, v.FieldByName(kv).Int(), c.Examples)
				}
			}
		})
	}
}

func TestCheckGroupsDeadLettersAndExpiringReservations(t *testing.T) {
	h := clean()
	h.DeadLetters = []ev.DeadLetter{
		{Group: "tripstate", Reason: "apply ride.request to trip 0123456789abcdef0123: rider_busy"},
		{Group: "tripstate", Reason: "apply ride.request to trip fedcba98765432100123: rider_busy"},
	}
	h.Store.Reservations["d1"] = Reservation{TripID: "t1", TTL: 3 * time.Second}
	c := Check(h)
	if c.SafetyTotal() != 0 {
		t.Errorf("dead letters and expiring reservations are not safety counts: %+v", c)
	}
	if len(c.DeadLetters) != 1 || c.InfoExpiringReservations != 1 {
		t.Errorf("dead letters %v, expiring reservations %d; want one reason, 1", c.DeadLetters, c.InfoExpiringReservations)
	}
}

func shift(es []TripEvent, d time.Duration) []TripEvent {
	for i := range es {
		es[i].Trip.UpdatedAt = es[i].Trip.UpdatedAt.Add(d)
	}
	return es
}

// A request acked while its rider had an active trip is created CANCELLED
// with reason rider_busy, so the rider sees it end: a legal beginning. A
// trip beginning CANCELLED for no such reason is not.
func TestCheckRefusedRequest(t *testing.T) {
	for _, tc := range []struct {
		reason  string
		illegal int
	}{{"rider_busy", 0}, {"", 1}} {
		h := clean()
		tr := ride.Trip{TripID: "t3", State: ride.StateCancelled, Reason: tc.reason, Version: 1, RiderID: "rt1", UpdatedAt: t0}
		h.TripEvents = append(h.TripEvents, TripEvent{Trip: tr, Cause: ev.TypeRideRequest})
		h.Store.Trips["t3"] = StoredTrip{V: 1, Trip: tr}
		h.Requests = append(h.Requests, sim.RequestRecord{Rider: "rt1", TripID: "t3", Acked: true, FinalState: tr.State, Outcome: "ended"})
		h.Pushes = append(h.Pushes, sim.PushRecord{User: "rt1", Seq: 7, TripID: "t3", State: tr.State, Version: 1})
		h.LogPushes = append(h.LogPushes, LogPush{User: "rt1", TripID: "t3", State: tr.State, Version: 1})
		c := Check(h)
		if c.IllegalTransitions != tc.illegal || c.SafetyTotal() != tc.illegal {
			t.Errorf("reason %q: illegal transitions %d (safety total %d), want %d: %v", tc.reason, c.IllegalTransitions,
				c.SafetyTotal(), tc.illegal, c.Examples)
		}
	}
}
