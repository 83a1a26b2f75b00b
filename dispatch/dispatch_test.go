package dispatch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/ride"
)

type capture struct {
	mu   sync.Mutex
	outs []ev.Outgoing
	fail error
}

func (c *capture) Publish(_ context.Context, outs ...ev.Outgoing) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.outs = append(c.outs, outs...)
	return nil
}

func (c *capture) take(t *testing.T) []ride.TripCommand {
	c.mu.Lock()
	defer c.mu.Unlock()
	var cmds []ride.TripCommand
	for _, o := range c.outs {
		var cmd ride.TripCommand
		if err := o.Env.DecodePayload(&cmd); err != nil {
			t.Fatal(err)
		}
		cmd.Role = o.Env.Type // the test reads the type from here
		cmds = append(cmds, cmd)
	}
	c.outs = nil
	return cmds
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

var t0 = time.Date(2026, 11, 22, 21, 0, 0, 0, time.UTC)

type fixture struct {
	t   *testing.T
	d   *Dispatcher
	pub *capture
	clk *clock
}

func newFixture(t *testing.T) *fixture {
	clk := &clock{now: t0}
	pub := &capture{}
	d := New(Config{OfferTimeout: 10 * time.Second, SearchDeadline: 60 * time.Second, StaleAfter: 15 * time.Second}, pub, nil, clk.Now)
	return &fixture{t: t, d: d, pub: pub, clk: clk}
}

func (f *fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) env(typ, key string, payload any) ev.Envelope {
	e, err := ev.New(typ, key, f.clk.now, payload)
	f.must(err)
	return e
}

func (f *fixture) driver(id string, lat, lng float64, available bool) {
	f.must(f.d.HandleDriverEvent(context.Background(), f.env(ev.TypeDriverAvailability, id, ride.DriverAvailability{DriverID: id, Available: available})))
	f.must(f.d.HandleDriverEvent(context.Background(), f.env(ev.TypeDriverLocation, id, ride.DriverLocation{DriverID: id, Lat: lat, Lng: lng})))
}

func (f *fixture) trip(tr ride.Trip, ended *ride.Offer) {
	f.handle(f.env(ev.TypeTripUpdated, tr.TripID, ride.TripUpdated{Trip: tr, EndedOffer: ended}))
}

// handle runs HandleTripEvent as the router does: what it decides is
// published.
func (f *fixture) handle(e ev.Envelope) {
	f.t.Helper()
	outs, err := f.d.HandleTripEvent(context.Background(), e)
	f.must(err)
	f.must(f.pub.Publish(context.Background(), outs...))
}

func requested(id string, offered ...string) ride.Trip {
	return ride.Trip{TripID: id, State: ride.StateRequested, Version: 1, RiderID: "r-" + id,
		Pickup: ride.LatLng{Lat: 37.7749, Lng: -122.4194}, RequestedAt: t0, Offered: offered}
}

func TestOffersGoToTheNearestEligibleDriver(t *testing.T) {
	cases := []struct {
		name  string
		setup func(f *fixture)
		trip  ride.Trip
		want  string // "" = no offer
	}{
		{"nearest wins", func(f *fixture) {
			f.driver("far", 37.7849, -122.4194, true)
			f.driver("near", 37.7759, -122.4194, true)
		}, requested("t"), "near"},
		{"unavailable is skipped", func(f *fixture) {
			f.driver("near", 37.7759, -122.4194, false)
			f.driver("far", 37.7849, -122.4194, true)
		}, requested("t"), "far"},
		{"stale is skipped", func(f *fixture) {
			f.driver("near", 37.7759, -122.4194, true)
			f.clk.now = f.clk.now.Add(20 * time.Second)
			f.driver("far", 37.7849, -122.4194, true)
		}, ride.Trip{TripID: "t", State: ride.StateRequested, Version: 1, Pickup: ride.LatLng{Lat: 37.7749, Lng: -122.4194}, RequestedAt: t0.Add(20 * time.Second)}, "far"},
		{"already offered this trip is skipped", func(f *fixture) {
			f.driver("near", 37.7759, -122.4194, true)
			f.driver("far", 37.7849, -122.4194, true)
		}, requested("t", "near"), "far"},
		{"busy is skipped", func(f *fixture) {
			f.driver("near", 37.7759, -122.4194, true)
			f.driver("far", 37.7849, -122.4194, true)
			f.trip(ride.Trip{TripID: "other", State: ride.StateAccepted, Version: 3, DriverID: "near"}, nil)
		}, requested("t"), "far"},
		{"beyond max pickup is skipped", func(f *fixture) {
			f.driver("very-far", 37.90, -122.4194, true)
		}, requested("t"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			f.pub.take(t)
			f.trip(tc.trip, nil)
			cmds := f.pub.take(t)
			if tc.want == "" {
				if len(cmds) != 0 {
					t.Fatalf("got %v, want no offer", cmds)
				}
				return
			}
			if len(cmds) != 1 || cmds[0].Role != ev.TypeDispatchOffer || cmds[0].DriverID != tc.want {
				t.Fatalf("got %+v, want an offer to %s", cmds, tc.want)
			}
			if !cmds[0].ExpiresAt.Equal(f.clk.now.Add(10*time.Second)) || cmds[0].PickupDistanceM <= 0 {
				t.Fatalf("offer %+v", cmds[0])
			}
		})
	}
}

func TestOneOpenOfferPerDriver(t *testing.T) {
	f := newFixture(t)
	f.driver("d1", 37.7759, -122.4194, true)
	f.trip(requested("a"), nil)
	f.trip(requested("b"), nil)
	cmds := f.pub.take(t)
	if len(cmds) != 1 || cmds[0].TripID != "a" {
		t.Fatalf("got %+v, want one offer for a", cmds)
	}
	// d1 declines a: the decline frees d1 for b, and a is not offered to d1 again.
	tr := requested("a", "d1")
	tr.Version = 3
	f.trip(tr, &ride.Offer{OfferID: cmds[0].OfferID, DriverID: "d1"})
	f.must(f.d.Tick(context.Background()))
	cmds = f.pub.take(t)
	if len(cmds) != 1 || cmds[0].TripID != "b" || cmds[0].DriverID != "d1" {
		t.Fatalf("got %+v, want b offered to d1", cmds)
	}
}

func TestExpiryAndDeadline(t *testing.T) {
	f := newFixture(t)
	f.driver("d1", 37.7759, -122.4194, true)
	f.trip(requested("t"), nil)
	offer := f.pub.take(t)[0]
	f.clk.now = f.clk.now.Add(9 * time.Second)
	f.driver("d1", 37.7759, -122.4194, true) // keep fresh
	f.pub.take(t)
	f.must(f.d.Tick(context.Background()))
	if cmds := f.pub.take(t); len(cmds) != 0 {
		t.Fatalf("before expiry: %+v", cmds)
	}
	f.clk.now = f.clk.now.Add(time.Second)
	f.must(f.d.Tick(context.Background()))
	f.must(f.d.Tick(context.Background()))
	cmds := f.pub.take(t)
	if len(cmds) != 1 || cmds[0].Role != ev.TypeDispatchExpire || cmds[0].OfferID != offer.OfferID {
		t.Fatalf("got %+v, want one expiry of %s", cmds, offer.OfferID)
	}
	f.clk.now = t0.Add(60 * time.Second)
	f.must(f.d.Tick(context.Background()))
	f.must(f.d.Tick(context.Background()))
	cmds = f.pub.take(t)
	if len(cmds) != 1 || cmds[0].Role != ev.TypeDispatchNoDrivers {
		t.Fatalf("got %+v, want one no_drivers", cmds)
	}
}

// TestFailedPublishIsDecidedAgain: an offer the clock decides but cannot
// publish is undone and decided again on the next tick. (What a trip event
// decides is returned to the router, which retries publishing it.)
func TestFailedPublishIsDecidedAgain(t *testing.T) {
	f := newFixture(t)
	f.must(f.d.PrepareSupply(context.Background()))
	f.driver("d1", 37.7759, -122.4194, true)
	f.trip(requested("t"), nil) // not rebuilt yet: the search waits for the clock
	f.d.SupplyCaughtUp()
	f.pub.fail = errors.New("broker down")
	if err := f.d.Tick(context.Background()); err == nil {
		t.Fatal("a failed publish must fail the tick")
	}
	f.pub.fail = nil
	f.must(f.d.Tick(context.Background()))
	if cmds := f.pub.take(t); len(cmds) != 1 || cmds[0].DriverID != "d1" {
		t.Fatalf("got %+v, want the offer decided again", cmds)
	}
}

// memReservations is Reservations in memory, as another replica would see it.
type memReservations struct {
	mu sync.Mutex
	m  map[string]string
}

func (r *memReservations) Reserve(_ context.Context, d, trip string, _ time.Duration) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.m[d]; ok && cur != trip {
		return false, nil
	}
	r.m[d] = trip
	return true, nil
}

func (r *memReservations) Hold(_ context.Context, d, trip string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[d] = trip
	return nil
}

func (r *memReservations) Release(_ context.Context, d, trip string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[d] == trip {
		delete(r.m, d)
	}
	return nil
}

func TestDriverReservedByAnotherReplicaIsSkipped(t *testing.T) {
	f := newFixture(t)
	res := &memReservations{m: map[string]string{"near": "someone-elses-trip"}}
	f.d.Reservations = res
	f.driver("near", 37.7759, -122.4194, true)
	f.driver("far", 37.7849, -122.4194, true)
	f.trip(requested("t"), nil)
	cmds := f.pub.take(t)
	if len(cmds) != 1 || cmds[0].DriverID != "far" || res.m["far"] != "t" {
		t.Fatalf("got %+v (reservations %v), want far offered and reserved", cmds, res.m)
	}
	// Accepted: held; completed: released.
	acc := requested("t")
	acc.State, acc.Version, acc.DriverID = ride.StateAccepted, 3, "far"
	f.trip(acc, &ride.Offer{OfferID: cmds[0].OfferID, DriverID: "far"})
	if res.m["far"] != "t" {
		t.Fatalf("accepted driver not held: %v", res.m)
	}
	acc.State, acc.Version = ride.StateCompleted, 6
	f.trip(acc, nil)
	if _, held := res.m["far"]; held {
		t.Fatalf("driver still reserved after the trip ended: %v", res.m)
	}
}

// TestPoliciesOnAConflict is the case batching exists for: two requests in
// one window, and the driver nearest to the first is the only one near the
// second. Greedy serves the first request best and the second badly; batch
// minimises the total.
func TestPoliciesOnAConflict(t *testing.T) {
	const lat, lng = 37.7749, -122.4194
	east := func(m float64) float64 { return lng + m/(111195*0.7907) } // cos(37.77°)
	cases := []struct {
		policy string
		want   map[string]string // trip → driver
	}{
		{PolicyGreedy, map[string]string{"A": "d1", "B": "d2"}},
		{PolicyBatch, map[string]string{"A": "d2", "B": "d1"}},
	}
	for _, tc := range cases {
		t.Run(tc.policy, func(t *testing.T) {
			clk := &clock{now: t0}
			pub := &capture{}
			d := New(Config{Policy: tc.policy}, pub, nil, clk.Now)
			f := &fixture{t: t, d: d, pub: pub, clk: clk}
			f.driver("d1", lat, east(250), true)  // 250 m from A, 250 m from B
			f.driver("d2", lat, east(-300), true) // 300 m from A, 800 m from B
			f.must(d.Tick(context.Background()))  // opens the first window, with nothing waiting
			for _, id := range []string{"A", "B"} {
				tr := requested(id)
				if id == "B" {
					tr.Pickup.Lng = east(500)
				}
				f.trip(tr, nil)
			}
			if tc.policy == PolicyBatch {
				if got := pub.take(t); len(got) != 0 {
					t.Fatalf("batch offered before its window closed: %+v", got)
				}
				clk.now = clk.now.Add(2 * time.Second)
				f.must(d.Tick(context.Background()))
			}
			got := map[string]string{}
			for _, c := range pub.take(t) {
				if c.Role != ev.TypeDispatchOffer {
					t.Fatalf("unexpected %s", c.Role)
				}
				got[c.TripID] = c.DriverID
			}
			if len(got) != 2 || got["A"] != tc.want["A"] || got["B"] != tc.want["B"] {
				t.Fatalf("offers %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPolicyNamesAreValidated(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"greedy", true}, {"batch", true}, {"", false}, {"Greedy", false}, {"hungarian", false}} {
		if err := ValidatePolicy(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidatePolicy(%q) = %v", tc.name, err)
		}
	}
}
