package sim

import (
	"math"
	"math/rand/v2"
	"net/url"
	"testing"
	"time"
)

func TestCityProjection(t *testing.T) {
	c := NewCity(DefaultCenter, 10)
	if c.Nodes() != 51*51 || c.SideM() != 10_000 {
		t.Fatalf("nodes %d side %g", c.Nodes(), c.SideM())
	}
	centre := c.Nearest(0, 0)
	if p := c.LatLngOf(c.XYOf(centre)); math.Abs(p.Lat-DefaultCenter.Lat) > 1e-9 || math.Abs(p.Lng-DefaultCenter.Lng) > 1e-9 {
		t.Errorf("centre node at %v", p)
	}
	// The corners are 5 km from the centre each way.
	ne := c.LatLngOf(c.XYOf(int32(c.Nodes() - 1)))
	if d := (ne.Lat - DefaultCenter.Lat) * metresPerDegLat; math.Abs(d-5000) > 1 {
		t.Errorf("north edge %g m from the centre", d)
	}
	for n := range int32(c.Nodes()) {
		if got := c.Nearest(c.XY(c.LatLngOf(c.XYOf(n)))); got != n {
			t.Fatalf("node %d round-trips to %d", n, got)
		}
	}
}

func TestRouteFollowsStreetsAndPrefersArterials(t *testing.T) {
	c := NewCity(DefaultCenter, 10)
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		from, to := c.RandomNode(r), c.RandomNode(r)
		path := c.Route(from, to)
		if path[0] != from || path[len(path)-1] != to {
			t.Fatalf("route %d→%d runs %d→%d", from, to, path[0], path[len(path)-1])
		}
		cost := 0.0
		for i := 1; i < len(path); i++ {
			if c.ManhattanM(path[i-1], path[i]) != BlockM {
				t.Fatalf("route %d→%d jumps from %d to %d", from, to, path[i-1], path[i])
			}
			x0, y0 := c.XYOf(path[i-1])
			x1, y1 := c.XYOf(path[i])
			cost += BlockM / c.speedOn(x0, y0, x1, y1)
		}
		// Never slower than the straight Manhattan route on local streets.
		if limit := c.ManhattanM(from, to) / LocalMPS; cost > limit+1e-6 {
			t.Fatalf("route %d→%d takes %gs, slower than %gs", from, to, cost, limit)
		}
	}
	// Corner to corner runs mostly on arterials.
	path := c.Route(0, int32(c.Nodes()-1))
	arterial := 0
	for i := 1; i < len(path); i++ {
		x0, y0 := c.XYOf(path[i-1])
		x1, y1 := c.XYOf(path[i])
		if c.speedOn(x0, y0, x1, y1) == ArterialMPS {
			arterial++
		}
	}
	if arterial != len(path)-1 {
		t.Errorf("corner to corner: %d of %d blocks on arterials", arterial, len(path)-1)
	}
}

func TestMoverStaysOnStreets(t *testing.T) {
	c := NewCity(DefaultCenter, 3)
	r := rand.New(rand.NewPCG(3, 4))
	var m mover
	m.x, m.y = c.XYOf(c.RandomNode(r))
	onGrid := func(v float64) bool {
		q := (v + c.half) / BlockM
		return math.Abs(q-math.Round(q)) < 1e-6
	}
	for range 2000 {
		if len(m.path) == 0 {
			m.path = c.Route(m.at(c), c.RandomNode(r))
		}
		dt := 0.1 + 40*r.Float64()
		m.advance(c, dt, 1)
		if !onGrid(m.x) && !onGrid(m.y) {
			t.Fatalf("off the streets at (%g, %g)", m.x, m.y)
		}
		if m.heading < 0 || m.heading >= 360 || m.speed > ArterialMPS {
			t.Fatalf("heading %g speed %g", m.heading, m.speed)
		}
	}
}

func TestSameSeedSamePhones(t *testing.T) {
	mk := func(seed uint64) *runner {
		cfg := DefaultConfig()
		cfg.Seed = seed
		cfg = cfg.withDefaults()
		base, _ := url.Parse(cfg.Target)
		return newRunner(t.Context(), cfg, base)
	}
	a, b, other := mk(42), mk(42), mk(43)
	differ := 0
	for i := range 50 {
		da, db, dother := newDriver(a, i), newDriver(b, i), newDriver(other, i)
		if da.mv.x != db.mv.x || da.mv.y != db.mv.y || da.ping != db.ping || da.factor != db.factor {
			t.Fatalf("driver %d differs between two runs with one seed", i)
		}
		ra, rb, rother := newRider(a, i), newRider(b, i), newRider(other, i)
		if ra.pickup != rb.pickup || ra.dropoff != rb.dropoff || ra.cancelIn != rb.cancelIn {
			t.Fatalf("rider %d differs between two runs with one seed", i)
		}
		if da.mv.x != dother.mv.x || da.mv.y != dother.mv.y || ra.pickup != rother.pickup {
			differ++
		}
	}
	if differ < 40 {
		t.Errorf("another seed changed only %d of 50 phones", differ)
	}
}

func TestLocationFrame(t *testing.T) {
	b := appendLocation(nil, LatLng{Lat: 37.7749, Lng: -122.4194}, 359.97, 12.345, mustTime("2026-11-22T21:00:00.120456Z"))
	want := `{"type":"location","lat":37.7749000,"lng":-122.4194000,"heading":0.0,"speed_mps":12.3,"at":"2026-11-22T21:00:00.120Z"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

func mustTime(s string) time.Time {
	t0, ok := parseTime(s)
	if !ok {
		panic(s)
	}
	return t0
}
