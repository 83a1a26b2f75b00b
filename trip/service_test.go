package trip

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/internal/redistest"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

type capture struct {
	mu   sync.Mutex
	outs []ev.Outgoing
}

func (c *capture) Publish(_ context.Context, outs ...ev.Outgoing) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outs = append(c.outs, outs...)
	return nil
}

// apply runs HandleCommand as the router does: what it returns is
// published (here, to the service's capture).
func (s *Service) apply(ctx context.Context, e ev.Envelope) error {
	outs, err := s.HandleCommand(ctx, e)
	if err != nil {
		return err
	}
	return s.pub.Publish(ctx, outs...)
}

// relay is apply for HandleDriverEvents.
func (s *Service) relay(ctx context.Context, es []ev.Envelope) error {
	outs, err := s.HandleDriverEvents(ctx, es)
	if err != nil {
		return err
	}
	return s.pub.Publish(ctx, outs...)
}

func (c *capture) take() []ev.Outgoing {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.outs
	c.outs = nil
	return o
}

var t0 = time.Date(2026, 11, 22, 21, 0, 0, 0, time.UTC)

func cmdEnv(t *testing.T, id, typ string, at time.Duration, cmd ride.TripCommand) ev.Envelope {
	t.Helper()
	e, err := ev.NewWithID(id, typ, cmd.TripID, t0.Add(at), cmd)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newService(t *testing.T) (*Service, *Store, *capture) {
	rs := redistest.Start(t)
	store := NewStore(rs.Client(t))
	pub := &capture{}
	return NewService(store, pub, nil), store, pub
}

var (
	here  = &ride.LatLng{Lat: 37.77, Lng: -122.42}
	there = &ride.LatLng{Lat: 37.78, Lng: -122.41}
)

// wholeRide is the commands of one complete ride, in order.
func wholeRide(t *testing.T) []ev.Envelope {
	return []ev.Envelope{
		cmdEnv(t, "e1", ev.TypeRideRequest, 0, ride.TripCommand{TripID: "t1", UserID: "r1", Role: "rider", Pickup: here, Dropoff: there}),
		cmdEnv(t, "e2", ev.TypeDispatchOffer, time.Second, ride.TripCommand{TripID: "t1", OfferID: "o1", DriverID: "d1", PickupDistanceM: 300, ExpiresAt: t0.Add(11 * time.Second)}),
		cmdEnv(t, "e3", ev.TypeOfferAccept, 2*time.Second, ride.TripCommand{TripID: "t1", UserID: "d1", Role: "driver", OfferID: "o1"}),
		cmdEnv(t, "e4", ev.TypeTripArrive, 3*time.Second, ride.TripCommand{TripID: "t1", UserID: "d1", Role: "driver"}),
		cmdEnv(t, "e5", ev.TypeTripStart, 4*time.Second, ride.TripCommand{TripID: "t1", UserID: "d1", Role: "driver"}),
		cmdEnv(t, "e6", ev.TypeTripComplete, 5*time.Second, ride.TripCommand{TripID: "t1", UserID: "d1", Role: "driver"}),
	}
}

func TestRideThroughEveryState(t *testing.T) {
	svc, store, pub := newService(t)
	ctx := context.Background()
	want := []string{ride.StateRequested, ride.StateOffered, ride.StateAccepted, ride.StateArrived, ride.StateInProgress, ride.StateCompleted}
	for i, e := range wholeRide(t) {
		if err := svc.apply(ctx, e); err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		tr, _, err := store.Trip(ctx, "t1")
		if err != nil || tr.State != want[i] || tr.Version != int64(i+1) {
			t.Fatalf("after %s: %s v%d (%v), want %s v%d", e.Type, tr.State, tr.Version, err, want[i], i+1)
		}
		if i == 2 || i == 3 {
			if id, rider, ok, _ := store.DriverClaim(ctx, "d1"); !ok || id != "t1" || rider != "r1" {
				t.Fatalf("after %s the driver claim is %q %q %v", e.Type, id, rider, ok)
			}
		}
	}
	if _, _, ok, _ := store.DriverClaim(ctx, "d1"); ok {
		t.Fatal("driver still claimed after COMPLETED")
	}
	if _, ok, _ := store.CurrentTrip(ctx, "r1", "rider"); ok {
		t.Fatal("rider still has a current trip after COMPLETED")
	}
	if n := len(pub.take()); n == 0 {
		t.Fatal("no outputs")
	}
}

func TestDuplicatesAndReplaysChangeNothing(t *testing.T) {
	clean, cleanStore, cleanPub := newService(t)
	dup, dupStore, dupPub := newService(t)
	ctx := context.Background()
	for _, e := range wholeRide(t) {
		if err := clean.apply(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// Every event twice, and each earlier event again after the later ones.
	evs := wholeRide(t)
	for i, e := range evs {
		for range 2 {
			if err := dup.apply(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		for _, old := range evs[:i] {
			if err := dup.apply(ctx, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	a, _, _ := cleanStore.Trip(ctx, "t1")
	b, _, _ := dupStore.Trip(ctx, "t1")
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("stored trip differs:\nclean %s\ndup   %s", ja, jb)
	}
	// Same distinct outputs (duplicates re-send the same ids, which the
	// gateway drops), none extra.
	ids := func(outs []ev.Outgoing) map[string]string {
		m := map[string]string{}
		for _, o := range outs {
			b, _ := json.Marshal(o.Env)
			m[o.Env.ID] = string(b)
		}
		return m
	}
	ca, cb := ids(cleanPub.take()), ids(dupPub.take())
	if len(ca) != len(cb) {
		t.Fatalf("clean run made %d distinct outputs, duplicated run %d", len(ca), len(cb))
	}
	for id, v := range ca {
		if cb[id] != v {
			t.Fatalf("output %s differs:\nclean %s\ndup   %s", id, v, cb[id])
		}
	}
}

func TestIllegalCommandsAreRejected(t *testing.T) {
	cases := []struct {
		name      string
		before    int // how many commands of wholeRide() to apply first
		e         func(t *testing.T) ev.Envelope
		permanent bool
	}{
		{"accept by someone else", 2, func(t *testing.T) ev.Envelope {
			return cmdEnv(t, "x", ev.TypeOfferAccept, 2*time.Second, ride.TripCommand{TripID: "t1", UserID: "d2", Role: "driver", OfferID: "o1"})
		}, true},
		{"accept after expiry", 2, func(t *testing.T) ev.Envelope {
			return cmdEnv(t, "x", ev.TypeOfferAccept, 12*time.Second, ride.TripCommand{TripID: "t1", UserID: "d1", Role: "driver", OfferID: "o1"})
		}, true},
		{"accept of a closed offer", 2, func(t *testing.T) ev.Envelope {
			return cmdEnv(t, "x", ev.TypeOfferAccept, 2*time.Second, ride.TripCommand{TripID: "t1", UserID: "d1", Role: "driver", OfferID: "o-old"})
		}, true},
		{"start before arrive", 3, func(t *testing.T) ev.Envelope {
			return cmdEnv(t, "x", ev.TypeTripStart, 4*time.Second, ride.TripCommand{TripID: "t1", UserID: "d1", Role: "driver"})
		}, true},
		{"cancel in progress", 5, func(t *testing.T) ev.Envelope {
			return cmdEnv(t, "x", ev.TypeTripCancel, 6*time.Second, ride.TripCommand{TripID: "t1", UserID: "r1", Role: "rider"})
		}, true},
		{"command for no trip", 0, func(t *testing.T) ev.Envelope {
			return cmdEnv(t, "x", ev.TypeTripArrive, 0, ride.TripCommand{TripID: "nope", UserID: "d1", Role: "driver"})
		}, true},
		{"late expiry from the dispatcher is ignored", 3, func(t *testing.T) ev.Envelope {
			return cmdEnv(t, "x", ev.TypeDispatchExpire, 12*time.Second, ride.TripCommand{TripID: "t1", OfferID: "o1"})
		}, false},
		{"a second offer while one is open is ignored", 2, func(t *testing.T) ev.Envelope {
			return cmdEnv(t, "x", ev.TypeDispatchOffer, time.Second, ride.TripCommand{TripID: "t1", OfferID: "o2", DriverID: "d9"})
		}, false},
		{"unknown type", 1, func(t *testing.T) ev.Envelope {
			return cmdEnv(t, "x", "trip.teleport", time.Second, ride.TripCommand{TripID: "t1"})
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc, store, pub := newService(t)
			ctx := context.Background()
			for _, e := range wholeRide(t)[:tc.before] {
				if err := svc.apply(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			before, _, _ := store.Trip(ctx, "t1")
			pub.take()
			err := svc.apply(ctx, tc.e(t))
			if tc.permanent != errors.Is(err, ev.ErrPermanent) || (!tc.permanent && err != nil) {
				t.Fatalf("err = %v, want permanent=%v", err, tc.permanent)
			}
			after, _, _ := store.Trip(ctx, "t1")
			if after.Version != before.Version || after.State != before.State {
				t.Fatalf("trip changed from %s v%d to %s v%d", before.State, before.Version, after.State, after.Version)
			}
			if outs := pub.take(); len(outs) != 0 {
				t.Fatalf("rejected command published %d events", len(outs))
			}
		})
	}
}

func TestOneDriverCannotHoldTwoTrips(t *testing.T) {
	svc, store, _ := newService(t)
	ctx := context.Background()
	for _, trip := range []string{"ta", "tb"} {
		rider := "r-" + trip
		must := func(e ev.Envelope) {
			if err := svc.apply(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		must(cmdEnv(t, trip+"1", ev.TypeRideRequest, 0, ride.TripCommand{TripID: trip, UserID: rider, Role: "rider", Pickup: here, Dropoff: there}))
		must(cmdEnv(t, trip+"2", ev.TypeDispatchOffer, 0, ride.TripCommand{TripID: trip, OfferID: "o" + trip, DriverID: "d1", ExpiresAt: t0.Add(time.Minute)}))
	}
	if err := svc.apply(ctx, cmdEnv(t, "acc-a", ev.TypeOfferAccept, time.Second, ride.TripCommand{TripID: "ta", UserID: "d1", Role: "driver", OfferID: "ota"})); err != nil {
		t.Fatal(err)
	}
	err := svc.apply(ctx, cmdEnv(t, "acc-b", ev.TypeOfferAccept, time.Second, ride.TripCommand{TripID: "tb", UserID: "d1", Role: "driver", OfferID: "otb"}))
	if !errors.Is(err, ev.ErrPermanent) {
		t.Fatalf("second accept: %v, want a permanent rejection", err)
	}
	if tb, _, _ := store.Trip(ctx, "tb"); tb.State != ride.StateOffered {
		t.Fatalf("trip b is %s", tb.State)
	}
}

func TestDeclinedDriverIsNeverOfferedTheTripAgain(t *testing.T) {
	svc, store, _ := newService(t)
	ctx := context.Background()
	for _, e := range wholeRide(t)[:2] {
		if err := svc.apply(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.apply(ctx, cmdEnv(t, "dec", ev.TypeOfferDecline, 2*time.Second, ride.TripCommand{TripID: "t1", UserID: "d1", Role: "driver", OfferID: "o1"})); err != nil {
		t.Fatal(err)
	}
	if err := svc.apply(ctx, cmdEnv(t, "again", ev.TypeDispatchOffer, 3*time.Second, ride.TripCommand{TripID: "t1", OfferID: "o2", DriverID: "d1", ExpiresAt: t0.Add(time.Minute)})); err != nil {
		t.Fatalf("a stale dispatcher offer should be ignored, got %v", err)
	}
	tr, _, _ := store.Trip(ctx, "t1")
	if tr.State != ride.StateRequested || tr.Reason != "offer_declined" || len(tr.Offered) != 1 {
		t.Fatalf("trip is %s (%s) offered to %v", tr.State, tr.Reason, tr.Offered)
	}
}

func TestTransitionTableHasNoExitFromTerminalStates(t *testing.T) {
	for _, s := range []string{ride.StateCompleted, ride.StateCancelled, ride.StateNoDrivers} {
		if len(Transitions[s]) != 0 {
			t.Errorf("terminal state %s has transitions %v", s, Transitions[s])
		}
	}
	for from, m := range Transitions {
		for cmd := range m {
			if _, ok := commandTypes[cmd]; !ok {
				t.Errorf("%s --%s--> uses a command that is not a trip command", from, cmd)
			}
		}
	}
}

// TestPingsReachTheRiderOfTheirTrip hands a batch of pings to the relay:
// only the driver with an accepted trip is forwarded, to that trip's
// rider, in order; availability is ignored and an unknown type is refused.
func TestPingsReachTheRiderOfTheirTrip(t *testing.T) {
	svc, _, pub := newService(t)
	ctx := context.Background()
	for _, e := range wholeRide(t)[:3] { // d1 accepts t1 for r1
		if err := svc.apply(ctx, e); err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
	}
	pub.take()
	ping := func(id, driver string, lat float64) ev.Envelope {
		e, err := ev.NewWithID(id, ev.TypeDriverLocation, driver, t0, ride.DriverLocation{DriverID: driver, Lat: lat, Lng: -122.42})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	avail, err := ev.NewWithID("a1", ev.TypeDriverAvailability, "d1", t0, ride.DriverAvailability{DriverID: "d1", Available: true})
	if err != nil {
		t.Fatal(err)
	}
	batch := []ev.Envelope{ping("p1", "d1", 37.1), ping("p2", "d2", 37.2), avail, ping("p3", "d1", 37.3)}
	if err := svc.relay(ctx, batch); err != nil {
		t.Fatal(err)
	}
	outs := pub.take()
	if len(outs) != 2 {
		t.Fatalf("%d pushes, want 2 (d1's pings; d2 has no trip)", len(outs))
	}
	for i, want := range []struct {
		id  string
		lat float64
	}{{"loc-p1", 37.1}, {"loc-p3", 37.3}} {
		o := outs[i]
		var p protocol.Push
		if err := o.Env.DecodePayload(&p); err != nil {
			t.Fatal(err)
		}
		var m protocol.DriverLocationMessage
		if err := json.Unmarshal(p.Message, &m); err != nil {
			t.Fatal(err)
		}
		if o.Topic != ev.TopicUserPushes || o.Env.ID != want.id || p.UserID != "r1" || m.TripID != "t1" || m.Lat != want.lat {
			t.Fatalf("push %d: %s %s to %s: %+v; want %s to r1 about t1 at lat %g", i, o.Topic, o.Env.ID, p.UserID, m, want.id, want.lat)
		}
	}
	bad, err := ev.NewWithID("x1", "driver.teleport", "d1", t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.relay(ctx, []ev.Envelope{bad}); !errors.Is(err, ev.ErrPermanent) {
		t.Fatalf("unknown driver event: %v, want a permanent error", err)
	}
}

func TestEnded(t *testing.T) {
	svc, store, _ := newService(t)
	ctx := context.Background()
	steps := wholeRide(t)
	for _, e := range steps[:5] { // IN_PROGRESS
		if err := svc.apply(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.Ended(ctx, []string{"t1", "no-such-trip"})
	if err != nil || got["t1"] || !got["no-such-trip"] {
		t.Fatalf("Ended = %v (%v); want t1 under way and the unknown trip ended", got, err)
	}
	if err := svc.apply(ctx, steps[5]); err != nil {
		t.Fatal(err)
	}
	if got, err := store.Ended(ctx, []string{"t1"}); err != nil || !got["t1"] {
		t.Fatalf("Ended after completion = %v (%v); want t1 ended", got, err)
	}
}

// A rider's second request while the first is active was acked by the
// gateway (requests sent at once all pass its check), so its trip must end
// where the rider sees it: created CANCELLED with a reason, pushed to the
// rider, and the first trip left as it was.
func TestSecondRequestOfABusyRiderEndsVisibly(t *testing.T) {
	svc, store, pub := newService(t)
	ctx := context.Background()
	req := func(id, trip string) ev.Envelope {
		return cmdEnv(t, id, ev.TypeRideRequest, 0, ride.TripCommand{TripID: trip, UserID: "r1", Role: "rider", Pickup: here, Dropoff: there})
	}
	if err := svc.apply(ctx, req("e1", "t1")); err != nil {
		t.Fatal(err)
	}
	pub.take()
	for range 2 { // the redelivery re-sends the same outputs and changes nothing
		if err := svc.apply(ctx, req("e2", "t2")); err != nil {
			t.Fatalf("second request: %v", err)
		}
		t2, ok, err := store.Trip(ctx, "t2")
		if err != nil || !ok {
			t.Fatalf("trip t2: ok=%v err=%v", ok, err)
		}
		if t2.State != ride.StateCancelled || t2.Reason != ReasonRiderBusy || t2.Version != 1 {
			t.Fatalf("t2 = %s v%d reason %q, want CANCELLED v1 %q", t2.State, t2.Version, t2.Reason, ReasonRiderBusy)
		}
		var pushed bool
		for _, o := range pub.take() {
			var p protocol.Push
			if o.Topic == ev.TopicUserPushes && o.Env.DecodePayload(&p) == nil && p.UserID == "r1" {
				pushed = strings.Contains(string(p.Message), `"state":"CANCELLED"`)
			}
		}
		if !pushed {
			t.Fatal("the rider got no CANCELLED trip push for t2")
		}
	}
	cur, ok, err := store.CurrentTrip(ctx, "r1", "rider")
	if err != nil || !ok || cur.TripID != "t1" || cur.State != ride.StateRequested {
		t.Fatalf("rider's current trip = %+v ok=%v err=%v, want t1 REQUESTED", cur, ok, err)
	}
	searching, err := store.overdue(ctx, t0.Add(time.Hour), 10)
	if err != nil || len(searching) != 1 || searching[0] != "t1" {
		t.Fatalf("searching = %v (%v), want only t1", searching, err)
	}
}
