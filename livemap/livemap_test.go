package livemap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/ride"
)

var t0 = time.Date(2026, 11, 22, 21, 0, 0, 0, time.UTC)

func mustNew(t testing.TB) *Aggregator {
	t.Helper()
	a, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func env(t testing.TB, typ, key string, at time.Time, payload any) ev.Envelope {
	t.Helper()
	e, err := ev.New(typ, key, at, payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func apply(t testing.TB, a *Aggregator, typ, key string, at time.Time, payload any) {
	t.Helper()
	if err := a.Apply(env(t, typ, key, at, payload)); err != nil {
		t.Fatalf("apply %s: %v", typ, err)
	}
}

func ping(t testing.TB, a *Aggregator, id string, at time.Time, lat, lng float64) {
	t.Helper()
	apply(t, a, ev.TypeDriverLocation, id, at, ride.DriverLocation{DriverID: id, Lat: lat, Lng: lng})
}

func avail(t testing.TB, a *Aggregator, id string, at time.Time, on bool) {
	t.Helper()
	apply(t, a, ev.TypeDriverAvailability, id, at, ride.DriverAvailability{DriverID: id, Available: on})
}

var pickup, dropoff = ride.LatLng{Lat: 37.7749, Lng: -122.4194}, ride.LatLng{Lat: 37.79, Lng: -122.40}

// tripAt is trip t-1 of rider r-secret in a state, as tripstate would emit it.
func tripAt(state string, version int64, driver string, at time.Time) ride.TripUpdated {
	tr := ride.Trip{TripID: "t-1", State: state, Version: version, RiderID: "r-secret", Pickup: pickup, Dropoff: dropoff,
		RequestedAt: t0, UpdatedAt: at}
	switch state {
	case ride.StateOffered:
		tr.Offer = &ride.Offer{OfferID: "o-1", DriverID: driver, ExpiresAt: at.Add(10 * time.Second)}
		tr.Offered = []string{driver}
	case ride.StateRequested:
	default:
		tr.DriverID = driver
		tr.Offered = []string{driver}
	}
	return ride.TripUpdated{Trip: tr, Cause: "test"}
}

// The driver's colour follows availability and its trip through the whole
// lifecycle, including a decline that frees it again.
func TestDriverStateFollowsEvents(t *testing.T) {
	type step struct {
		availability *bool
		trip         *ride.TripUpdated
		want         string
	}
	on, off := true, false
	up := func(u ride.TripUpdated) *ride.TripUpdated { return &u }
	declined := tripAt(ride.StateRequested, 3, "", t0)
	declined.EndedOffer = &ride.Offer{OfferID: "o-1", DriverID: "d-1"}
	tests := []struct {
		name  string
		steps []step
	}{
		{"pinging without availability is unavailable", []step{{want: "unavailable"}}},
		{"available", []step{{availability: &on, want: "available"}}},
		{"available then off duty", []step{{availability: &on, want: "available"}, {availability: &off, want: "unavailable"}}},
		{"a whole ride", []step{
			{availability: &on, want: "available"},
			{trip: up(tripAt(ride.StateRequested, 1, "", t0)), want: "available"},
			{trip: up(tripAt(ride.StateOffered, 2, "d-1", t0)), want: "offered"},
			{trip: up(tripAt(ride.StateAccepted, 3, "d-1", t0)), want: "en_route"},
			{trip: up(tripAt(ride.StateArrived, 4, "d-1", t0)), want: "en_route"},
			{trip: up(tripAt(ride.StateInProgress, 5, "d-1", t0)), want: "on_trip"},
			{trip: up(tripAt(ride.StateCompleted, 6, "d-1", t0)), want: "available"},
		}},
		{"declined offer frees the driver", []step{
			{availability: &on, want: "available"},
			{trip: up(tripAt(ride.StateOffered, 2, "d-1", t0)), want: "offered"},
			{trip: &declined, want: "available"},
		}},
		{"a stale update changes nothing", []step{
			{availability: &on, want: "available"},
			{trip: up(tripAt(ride.StateInProgress, 5, "d-1", t0)), want: "on_trip"},
			{trip: up(tripAt(ride.StateAccepted, 3, "d-1", t0)), want: "on_trip"},
		}},
		{"cancelled while en route frees the driver", []step{
			{availability: &on, want: "available"},
			{trip: up(tripAt(ride.StateAccepted, 3, "d-1", t0)), want: "en_route"},
			{trip: up(tripAt(ride.StateCancelled, 4, "d-1", t0)), want: "available"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := mustNew(t)
			ping(t, a, "d-1", t0, 37.77, -122.42)
			a.Tick(t0, false)
			for i, s := range tc.steps {
				if s.availability != nil {
					avail(t, a, "d-1", t0, *s.availability)
				}
				if s.trip != nil {
					apply(t, a, ev.TypeTripUpdated, "t-1", t0, *s.trip)
				}
				a.Tick(t0, false)
				d, err := a.Inspect(KindDriver, 0)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if d.Driver.State != s.want {
					t.Errorf("step %d: state %q, want %q", i, d.Driver.State, s.want)
				}
			}
		})
	}
}

func TestBadEventsArePermanentErrors(t *testing.T) {
	tests := []struct {
		name string
		e    ev.Envelope
	}{
		{"location payload not an object", ev.Envelope{ID: "1", Type: ev.TypeDriverLocation, Version: 1, Payload: []byte(`[1]`)}},
		{"location without driver", ev.Envelope{ID: "2", Type: ev.TypeDriverLocation, Version: 1, Payload: []byte(`{"lat":1,"lng":2}`)}},
		{"availability without driver", ev.Envelope{ID: "3", Type: ev.TypeDriverAvailability, Version: 1, Payload: []byte(`{"available":true}`)}},
		{"trip without id", ev.Envelope{ID: "4", Type: ev.TypeTripUpdated, Version: 1, Payload: []byte(`{"trip":{"state":"REQUESTED"}}`)}},
		{"trip of the wrong shape", ev.Envelope{ID: "5", Type: ev.TypeTripUpdated, Version: 1, Payload: []byte(`{"trip":"x"}`)}},
		{"unknown type", ev.Envelope{ID: "6", Type: "teleport", Version: 1, Payload: []byte(`{}`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := mustNew(t).Apply(tc.e)
			if !errors.Is(err, ev.ErrPermanent) {
				t.Fatalf("Apply = %v, want a permanent error", err)
			}
		})
	}
	if _, err := New(Config{Resolution: 16}); err == nil {
		t.Error("New accepted H3 resolution 16")
	}
}

// viewerModel applies frames the way the page does; a test compares it with
// a fresh snapshot to prove that deltas are complete and correct.
type viewerModel struct {
	tick    uint64
	drivers map[int64][4]int64
	trips   map[int64][7]int64
	hex     map[int64][2]int64
	cells   map[int64]bool
}

func (m *viewerModel) apply(t *testing.T, b []byte) {
	t.Helper()
	var head struct{ Type string }
	if err := json.Unmarshal(b, &head); err != nil {
		t.Fatalf("frame is not JSON: %v\n%s", err, b)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	switch head.Type {
	case MsgSnapshot:
		var s SnapshotMessage
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		*m = viewerModel{tick: s.Tick, drivers: map[int64][4]int64{}, trips: map[int64][7]int64{}, hex: map[int64][2]int64{}, cells: map[int64]bool{}}
		m.add(t, s.Drivers, s.Trips, s.Hex, s.Cells)
	case MsgDelta:
		var d DeltaMessage
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("delta: %v", err)
		}
		if d.Tick != m.tick+1 {
			t.Fatalf("delta %d applied on tick %d", d.Tick, m.tick)
		}
		m.tick = d.Tick
		for i := 0; i < len(d.Moved); i += 3 {
			e, ok := m.drivers[d.Moved[i]]
			if !ok {
				t.Fatalf("tick %d moves driver slot %d the viewer does not have", d.Tick, d.Moved[i])
			}
			e[1] += d.Moved[i+1]
			e[2] += d.Moved[i+2]
			m.drivers[d.Moved[i]] = e
		}
		for _, s := range d.DriversGone {
			if _, ok := m.drivers[s]; !ok {
				t.Fatalf("tick %d removes driver slot %d the viewer does not have", d.Tick, s)
			}
			delete(m.drivers, s)
		}
		for _, s := range d.TripsGone {
			delete(m.trips, s)
		}
		m.add(t, d.Drivers, d.Trips, d.Hex, d.Cells)
	default:
		t.Fatalf("frame type %q", head.Type)
	}
}

func (m *viewerModel) add(t *testing.T, drivers, trips, hex []int64, cells [][]int64) {
	if len(drivers)%4 != 0 || len(trips)%7 != 0 || len(hex)%3 != 0 {
		t.Fatalf("tuple lists of lengths %d, %d, %d", len(drivers), len(trips), len(hex))
	}
	for _, c := range cells {
		if len(c) < 11 || len(c)%2 != 1 {
			t.Fatalf("cell outline %v: want an index and at least 5 vertices", c)
		}
		m.cells[c[0]] = true
	}
	for i := 0; i < len(drivers); i += 4 {
		m.drivers[drivers[i]] = [4]int64(drivers[i : i+4])
	}
	for i := 0; i < len(trips); i += 7 {
		m.trips[trips[i]] = [7]int64(trips[i : i+7])
	}
	for i := 0; i < len(hex); i += 3 {
		if !m.cells[hex[i]] {
			t.Fatalf("hex count for cell %d, whose outline the viewer never got", hex[i])
		}
		if hex[i+1] == 0 && hex[i+2] == 0 {
			delete(m.hex, hex[i])
		} else {
			m.hex[hex[i]] = [2]int64{hex[i+1], hex[i+2]}
		}
	}
}

// Deltas applied in order give exactly the picture a fresh snapshot gives,
// through random pings, availability changes, trips and drivers going
// stale, with slots freed and reused.
func TestDeltasReproduceSnapshots(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			a, err := New(Config{StaleAfter: 3 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			var m viewerModel
			now := t0
			versions := map[string]int64{}
			for tick := 0; tick < 200; tick++ {
				now = now.Add(250 * time.Millisecond)
				for k := 0; k < 20; k++ {
					id := fmt.Sprintf("d-%d", r.IntN(60))
					switch r.IntN(10) {
					case 0:
						avail(t, a, id, now, r.IntN(3) > 0)
					case 1, 2:
						trip := fmt.Sprintf("t-%d", r.IntN(15))
						states := []string{ride.StateRequested, ride.StateOffered, ride.StateAccepted, ride.StateArrived, ride.StateInProgress, ride.StateCompleted, ride.StateCancelled}
						versions[trip]++
						u := tripAt(states[r.IntN(len(states))], versions[trip], id, now)
						u.Trip.TripID = trip
						u.Trip.Pickup.Lat += r.Float64() / 50
						apply(t, a, ev.TypeTripUpdated, trip, now, u)
					default:
						if r.IntN(4) > 0 { // some drivers stop pinging and go stale
							ping(t, a, id, now, 37.7+r.Float64()/10, -122.45+r.Float64()/10)
						}
					}
				}
				f := a.Tick(now, tick%37 == 0)
				if tick == 0 {
					m.apply(t, f.Snapshot)
				} else {
					m.apply(t, f.Delta)
				}
				if f.Snapshot != nil {
					var fresh viewerModel
					fresh.apply(t, f.Snapshot)
					if !reflect.DeepEqual(fresh, m) {
						t.Fatalf("tick %d: deltas give\n%+v\nthe snapshot gives\n%+v", f.Tick, m, fresh)
					}
				}
			}
			if len(m.drivers) == 0 || len(m.trips) == 0 || len(m.hex) == 0 {
				t.Fatalf("the run drew nothing worth comparing: %d drivers, %d trips, %d cells", len(m.drivers), len(m.trips), len(m.hex))
			}
		})
	}
}

// A driver whose pings stop leaves the map after StaleAfter; its slot is
// reused only after the frame that says it is gone.
func TestStaleDriversLeaveAndSlotsWait(t *testing.T) {
	a, err := New(Config{StaleAfter: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ping(t, a, "d-old", t0, 37.77, -122.42)
	var first SnapshotMessage
	if err := json.Unmarshal(a.Tick(t0, true).Snapshot, &first); err != nil {
		t.Fatal(err)
	}
	if len(first.Drivers) != 4 || first.Stats.DriversOnline != 1 {
		t.Fatalf("snapshot %+v: want one driver", first)
	}
	later := t0.Add(6 * time.Second)
	ping(t, a, "d-new", later, 37.78, -122.41)
	var d DeltaMessage
	if err := json.Unmarshal(a.Tick(later, false).Delta, &d); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.DriversGone, []int64{0}) || len(d.Drivers) != 4 || d.Drivers[0] == 0 {
		t.Fatalf("delta gone %v drivers %v: want slot 0 gone and d-new on another slot", d.DriversGone, d.Drivers)
	}
	if _, err := a.Inspect(KindDriver, 0); !errors.Is(err, ErrNotOnMap) {
		t.Fatalf("Inspect of the freed slot = %v, want ErrNotOnMap", err)
	}
	ping(t, a, "d-third", later, 37.76, -122.43)
	if err := json.Unmarshal(a.Tick(later, false).Delta, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Drivers) != 4 || d.Drivers[0] != 0 {
		t.Fatalf("delta drivers %v: want d-third on the freed slot 0 now", d.Drivers)
	}
}

// A redelivered or late ping never moves a driver back.
func TestPingsAreIdempotent(t *testing.T) {
	a := mustNew(t)
	e := env(t, ev.TypeDriverLocation, "d-1", t0.Add(time.Second), ride.DriverLocation{DriverID: "d-1", Lat: 37.78, Lng: -122.41})
	for range 3 {
		if err := a.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	ping(t, a, "d-1", t0, 37.70, -122.50) // older, arriving late
	a.Tick(t0.Add(time.Second), false)
	d, err := a.Inspect(KindDriver, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Driver.Position != (ride.LatLng{Lat: 37.78, Lng: -122.41}) || len(d.Driver.Trail) != 1 {
		t.Fatalf("driver at %v with trail %v, want the newest ping once", d.Driver.Position, d.Driver.Trail)
	}
}

// Rider identities never reach a viewer: not in frames, not in details.
func TestNoRiderIdentities(t *testing.T) {
	a := mustNew(t)
	avail(t, a, "d-1", t0, true)
	ping(t, a, "d-1", t0, 37.77, -122.42)
	apply(t, a, ev.TypeTripUpdated, "t-1", t0, tripAt(ride.StateRequested, 1, "", t0))
	apply(t, a, ev.TypeTripUpdated, "t-1", t0, tripAt(ride.StateAccepted, 3, "d-1", t0))
	f := a.Tick(t0, true)
	dd, err := a.Inspect(KindDriver, 0)
	if err != nil {
		t.Fatal(err)
	}
	td, err := a.Inspect(KindTrip, 0)
	if err != nil {
		t.Fatal(err)
	}
	details, _ := json.Marshal([]Detail{dd, td})
	for name, b := range map[string][]byte{"snapshot": f.Snapshot, "delta": f.Delta, "details": details} {
		if bytes.Contains(b, []byte("r-secret")) || bytes.Contains(b, []byte("rider")) {
			t.Errorf("%s names the rider: %s", name, b)
		}
	}
	if td.Trip.TripID != "t-1" || td.Trip.DriverID != "d-1" || len(td.Trip.History) != 2 {
		t.Errorf("trip detail %+v: want t-1 with d-1 and two history entries", td.Trip)
	}
}

func TestInspectRefusesBadSlots(t *testing.T) {
	a := mustNew(t)
	for _, tc := range []struct {
		kind string
		slot int64
	}{{KindDriver, 0}, {KindDriver, -1}, {KindTrip, 3}, {"rider", 0}} {
		if _, err := a.Inspect(tc.kind, tc.slot); err == nil {
			t.Errorf("Inspect(%q, %d) succeeded on an empty map", tc.kind, tc.slot)
		}
	}
}

// The figures: request→offer percentiles and matches over the last minute,
// ended trips counted once even if redelivered.
func TestFiguresOverTheLastMinute(t *testing.T) {
	a := mustNew(t)
	for i := range 100 {
		u := tripAt(ride.StateOffered, 2, fmt.Sprintf("d-%d", i), t0.Add(time.Duration(i+1)*time.Millisecond))
		u.Trip.TripID = fmt.Sprintf("t-%d", i)
		apply(t, a, ev.TypeTripUpdated, u.Trip.TripID, t0, u)
	}
	done := tripAt(ride.StateCompleted, 6, "d-0", t0)
	done.Trip.TripID = "t-0"
	apply(t, a, ev.TypeTripUpdated, "t-0", t0, done)
	apply(t, a, ev.TypeTripUpdated, "t-0", t0, done) // redelivered
	acc := tripAt(ride.StateAccepted, 3, "d-1", t0)
	acc.Trip.TripID = "t-1"
	apply(t, a, ev.TypeTripUpdated, "t-1", t0, acc)

	var s SnapshotMessage
	if err := json.Unmarshal(a.Tick(t0.Add(time.Second), true).Snapshot, &s); err != nil {
		t.Fatal(err)
	}
	want := Stats{OpenRequests: 98, Active: map[string]int{ride.StateOffered: 98, ride.StateAccepted: 1},
		EndedLastMin: map[string]int{ride.StateCompleted: 1}, MatchesLastMin: 1, OfferP50Ms: 50, OfferP99Ms: 99, OfferSamples: 100}
	if !reflect.DeepEqual(s.Stats, want) {
		t.Fatalf("stats %+v\nwant  %+v", s.Stats, want)
	}
	s = SnapshotMessage{} // Unmarshal would merge into the old maps
	if err := json.Unmarshal(a.Tick(t0.Add(2*time.Minute), true).Snapshot, &s); err != nil {
		t.Fatal(err)
	}
	if s.Stats.OfferSamples != 0 || s.Stats.MatchesLastMin != 0 || len(s.Stats.EndedLastMin) != 0 {
		t.Fatalf("two minutes later the window still holds %+v", s.Stats)
	}
}

// A viewer that takes every frame gets deltas; one that does not take them
// holds exactly one frame, loses the rest, and catches up with a snapshot.
func TestLatestFrameWins(t *testing.T) {
	a := mustNew(t)
	h := NewHub(a, time.Second)
	fast, slow := h.Subscribe(), h.Subscribe()
	defer fast.Close()
	defer slow.Close()
	var got []string
	typeOf := func(b []byte) string {
		var m struct{ Type string }
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m.Type
	}
	for i := range 10 {
		ping(t, a, "d-1", t0.Add(time.Duration(i)*time.Second), 37.77+float64(i)/1000, -122.42)
		h.Step(t0.Add(time.Duration(i) * time.Second))
		select {
		case <-fast.Ready():
		default:
			t.Fatalf("step %d: the fast viewer was not signalled", i)
		}
		got = append(got, typeOf(fast.Take()))
	}
	want := append([]string{MsgSnapshot}, strings.Split(strings.Repeat(MsgDelta+" ", 9), " ")[:9]...)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fast viewer got %v, want %v", got, want)
	}
	if n := slow.Dropped(); n != 9 {
		t.Fatalf("slow viewer dropped %d frames, want 9 (one held, nine replaced)", n)
	}
	if f := slow.Take(); typeOf(f) != MsgSnapshot || slow.Take() != nil {
		t.Fatalf("slow viewer's one waiting frame is %s, want a snapshot and nothing after it", f)
	}
	h.Step(t0.Add(10 * time.Second))
	if f := slow.Take(); typeOf(f) != MsgDelta {
		t.Fatalf("after catching up the slow viewer gets %s, want a delta", f)
	}
}

// The feed's cost at 10,000 drivers each pinging every second: bytes per
// second of deltas, counted, not timed. The budget is 200 KB/s per viewer.
func TestFeedBytesAtTenThousandDrivers(t *testing.T) {
	a := mustNew(t)
	r := rand.New(rand.NewPCG(1, 2))
	const n = 10_000
	lat, lng := make([]float64, n), make([]float64, n)
	for i := range n {
		lat[i], lng[i] = 37.73+r.Float64()*0.09, -122.47+r.Float64()*0.11
		id := fmt.Sprintf("drv-%05d", i)
		avail(t, a, id, t0, true)
		ping(t, a, id, t0, lat[i], lng[i])
	}
	snap := a.Tick(t0, true).Snapshot
	var total int
	const secs, ticksPerSec = 10, 4
	for s := range secs {
		for k := range ticksPerSec {
			now := t0.Add(time.Duration(s)*time.Second + time.Duration(k+1)*time.Second/ticksPerSec)
			// A quarter of the drivers ping in each quarter second: every
			// driver once a second, moving about 10 m.
			for i := k; i < n; i += ticksPerSec {
				lat[i] += (r.Float64() - 0.5) * 0.0002
				lng[i] += (r.Float64() - 0.5) * 0.0002
				ping(t, a, fmt.Sprintf("drv-%05d", i), now, lat[i], lng[i])
			}
			total += len(a.Tick(now, false).Delta)
		}
	}
	perSec := float64(total) / secs
	t.Logf("10,000 drivers pinging every second: snapshot %d KB, deltas %.1f KB/s", len(snap)/1024, perSec/1024)
	if perSec >= 200*1024 {
		t.Fatalf("deltas cost %.1f KB/s per viewer, over the 200 KB/s budget", perSec/1024)
	}
}

// BenchmarkApplyLocation: the map's share of every ping. 10,000 drivers,
// each moving 10 m (a second at city speed) between its pings.
//
//	go test ./livemap -run XXX -bench ApplyLocation -benchmem
func BenchmarkApplyLocation(b *testing.B) {
	const drivers, rounds = 10000, 20
	a := mustNew(b)
	// Each pass drives on from where the last one ended, one second later.
	pass := func(p int) []ev.Envelope {
		envs := make([]ev.Envelope, 0, drivers*rounds)
		for r := range rounds {
			step := p*rounds + r
			at := t0.Add(time.Duration(step) * time.Second)
			for i := range drivers {
				id := fmt.Sprintf("d-%d", i)
				lat := 37.70 + float64(i%100)*0.002 + float64(step)*0.00009
				lng := -122.50 + float64(i/100)*0.002
				envs = append(envs, env(b, ev.TypeDriverLocation, id, at, ride.DriverLocation{DriverID: id, Lat: lat, Lng: lng}))
			}
		}
		return envs
	}
	envs, p, i := pass(0), 0, 0
	for b.Loop() {
		if i == len(envs) {
			b.StopTimer()
			p++
			envs, i = pass(p), 0
			b.StartTimer()
		}
		if err := a.Apply(envs[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
