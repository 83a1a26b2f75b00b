package sim

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/hexride/hexride/protocol"
)

// LatLng is a WGS84 position in degrees, as the contract writes it.
type LatLng = protocol.LatLng

// The street network: a square grid of two-way streets BlockM apart, with
// every ArterialEvery-th street in each direction an arterial.
const (
	BlockM        = 200.0 // metres between parallel streets
	ArterialEvery = 5     // an arterial every 1 km
	LocalMPS      = 9.0   // 32 km/h on local streets
	ArterialMPS   = 15.0  // 54 km/h on arterials
)

// metres per degree of latitude (spherical Earth, good to a few metres over
// a city).
const metresPerDegLat = 111_320.0

// City is the simulated street grid, centred on a point and projected onto
// a local flat plane (x east, y north, metres from the centre). It is
// read-only once built and shared by every phone.
type City struct {
	center     LatLng
	n          int     // nodes per side
	half       float64 // half the side, metres
	mPerDegLng float64
	scratch    sync.Pool // *routeScratch
}

// NewCity builds a grid of sizeKM × sizeKM around center (at least 1 km).
func NewCity(center LatLng, sizeKM float64) *City {
	n := int(math.Round(sizeKM*1000/BlockM)) + 1
	n = max(n, 6)
	c := &City{center: center, n: n, half: float64(n-1) * BlockM / 2,
		mPerDegLng: metresPerDegLat * math.Cos(center.Lat*math.Pi/180)}
	c.scratch.New = func() any {
		return &routeScratch{cost: make([]float64, n*n), prev: make([]int32, n*n), stamp: make([]uint32, n*n)}
	}
	return c
}

// Nodes is the number of intersections.
func (c *City) Nodes() int { return c.n * c.n }

// SideM is the length of the city's side in metres.
func (c *City) SideM() float64 { return 2 * c.half }

func (c *City) ixy(n int32) (ix, iy int) { return int(n) % c.n, int(n) / c.n }

func (c *City) node(ix, iy int) int32 { return int32(iy*c.n + ix) }

// XYOf is the plane position of an intersection.
func (c *City) XYOf(n int32) (x, y float64) {
	ix, iy := c.ixy(n)
	return float64(ix)*BlockM - c.half, float64(iy)*BlockM - c.half
}

// LatLngOf converts a plane position to WGS84.
func (c *City) LatLngOf(x, y float64) LatLng {
	return LatLng{Lat: c.center.Lat + y/metresPerDegLat, Lng: c.center.Lng + x/c.mPerDegLng}
}

// XY converts WGS84 to the plane.
func (c *City) XY(p LatLng) (x, y float64) {
	return (p.Lng - c.center.Lng) * c.mPerDegLng, (p.Lat - c.center.Lat) * metresPerDegLat
}

// Nearest is the intersection closest to a plane position (clamped to the
// city).
func (c *City) Nearest(x, y float64) int32 {
	ix := int(math.Round((x + c.half) / BlockM))
	iy := int(math.Round((y + c.half) / BlockM))
	return c.node(min(max(ix, 0), c.n-1), min(max(iy, 0), c.n-1))
}

// RandomNode draws an intersection uniformly.
func (c *City) RandomNode(r *rand.Rand) int32 { return int32(r.IntN(c.n * c.n)) }

// CentralNode draws an intersection from a normal distribution around the
// centre (σ = a fifth of the side): downtown, where demand concentrates.
func (c *City) CentralNode(r *rand.Rand) int32 {
	s := c.SideM() / 5
	return c.Nearest(r.NormFloat64()*s, r.NormFloat64()*s)
}

// ManhattanM is the street distance between two intersections ignoring
// speeds.
func (c *City) ManhattanM(a, b int32) float64 {
	ax, ay := c.ixy(a)
	bx, by := c.ixy(b)
	return float64(abs(ax-bx)+abs(ay-by)) * BlockM
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// arterialLine tells whether the street along grid line i is an arterial.
func arterialLine(i int) bool { return i%ArterialEvery == 0 }

// speedOn is the speed limit of the street a straight move from (x0, y0) to
// (x1, y1) runs along.
func (c *City) speedOn(x0, y0, x1, y1 float64) float64 {
	switch {
	case math.Abs(y1-y0) < 1e-6: // east-west, along a row
		if arterialLine(int(math.Round((y0 + c.half) / BlockM))) {
			return ArterialMPS
		}
	case math.Abs(x1-x0) < 1e-6: // north-south, along a column
		if arterialLine(int(math.Round((x0 + c.half) / BlockM))) {
			return ArterialMPS
		}
	}
	return LocalMPS
}

// routeScratch is the working memory of one route search, pooled so that
// phones hold none.
type routeScratch struct {
	cost  []float64
	prev  []int32
	stamp []uint32
	gen   uint32
	open  openSet
}

type openItem struct {
	node int32
	f    float64
}

type openSet []openItem

func (h openSet) Len() int           { return len(h) }
func (h openSet) Less(i, j int) bool { return h[i].f < h[j].f }
func (h openSet) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *openSet) Push(x any)        { *h = append(*h, x.(openItem)) }
func (h *openSet) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// Route is the fastest path (by travel time at the speed limits) from one
// intersection to another, both included: an A* search over the grid.
func (c *City) Route(from, to int32) []int32 {
	if from == to {
		return []int32{to}
	}
	s := c.scratch.Get().(*routeScratch)
	defer c.scratch.Put(s)
	s.gen++
	if s.gen == 0 { // wrapped: forget every stamp
		clear(s.stamp)
		s.gen = 1
	}
	h := func(n int32) float64 { return c.ManhattanM(n, to) / ArterialMPS }
	s.open = s.open[:0]
	s.cost[from], s.prev[from], s.stamp[from] = 0, -1, s.gen
	heap.Push(&s.open, openItem{from, h(from)})
	for s.open.Len() > 0 {
		it := heap.Pop(&s.open).(openItem)
		u := it.node
		if u == to {
			break
		}
		if it.f > s.cost[u]+h(u)+1e-9 {
			continue // a stale entry
		}
		ux, uy := c.ixy(u)
		for _, d := range [4][2]int{{1, 0}, {-1, 0}, {0, 1}, {0, -1}} {
			vx, vy := ux+d[0], uy+d[1]
			if vx < 0 || vy < 0 || vx >= c.n || vy >= c.n {
				continue
			}
			speed := LocalMPS
			if (d[1] == 0 && arterialLine(uy)) || (d[0] == 0 && arterialLine(ux)) {
				speed = ArterialMPS
			}
			v := c.node(vx, vy)
			nc := s.cost[u] + BlockM/speed
			if s.stamp[v] == s.gen && s.cost[v] <= nc {
				continue
			}
			s.cost[v], s.prev[v], s.stamp[v] = nc, u, s.gen
			heap.Push(&s.open, openItem{v, nc + h(v)})
		}
	}
	n := 0
	for v := to; v != -1; v = s.prev[v] {
		n++
	}
	path := make([]int32, n)
	for v := to; v != -1; v = s.prev[v] {
		n--
		path[n] = v
	}
	return path
}

// mover is a vehicle's position on the grid and the intersections still
// ahead of it. It always stands on a street: it starts at an intersection
// and moves in straight lines between adjacent ones.
type mover struct {
	x, y    float64
	path    []int32
	heading float64 // degrees clockwise from north, [0, 360)
	speed   float64 // m/s on the current street; 0 when stopped
}

// at is the intersection the vehicle stands at or is nearest to.
func (m *mover) at(c *City) int32 { return c.Nearest(m.x, m.y) }

// advance moves the vehicle along its path for dt seconds of world time at
// factor × the speed limits. It reports whether the path is used up (the
// vehicle stands at its last intersection).
func (m *mover) advance(c *City, dt, factor float64) bool {
	for len(m.path) > 0 && dt > 0 {
		tx, ty := c.XYOf(m.path[0])
		dx, dy := tx-m.x, ty-m.y
		d := math.Hypot(dx, dy)
		if d < 1e-6 {
			m.path = m.path[1:]
			continue
		}
		v := c.speedOn(m.x, m.y, tx, ty) * factor
		m.speed, m.heading = v, headingOf(dx, dy)
		if step := v * dt; step < d {
			m.x += dx / d * step
			m.y += dy / d * step
			return false
		}
		m.x, m.y = tx, ty
		dt -= d / v
		m.path = m.path[1:]
	}
	if len(m.path) > 0 {
		return false // out of time before the end of the path
	}
	m.speed = 0
	return true
}

// headingOf is the compass heading of a move by (dx east, dy north).
func headingOf(dx, dy float64) float64 {
	h := math.Atan2(dx, dy) * 180 / math.Pi
	if h < 0 {
		h += 360
	}
	if h >= 360 {
		h = 0
	}
	return h
}
