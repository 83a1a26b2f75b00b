// Package geo owns the supply index: where drivers are, by H3 cell, and the
// exact "k nearest eligible drivers" query the dispatcher runs on it. It is a
// plain data structure with no I/O and knows nothing of Kafka or trips.
//
// # Resolution
//
// Resolution 8 (hexagons of about 0.74 km², edge about 0.46 km) is the
// default. With 100,000 drivers over 30 × 30 km a cell holds about 80
// drivers, so the nearest five are almost always settled by the origin cell
// and its first ring (7 cells, a few hundred drivers scanned at a few
// nanoseconds each), and a driver at city speed stays in one cell for about
// a minute, so most pings never call into H3. Resolution 9 scans fewer
// drivers but walks three times as many cells; resolution 7 the reverse.
// The benchmarks in index_bench_test.go (BenchmarkNearestResolution)
// measured 8 fastest at both 10,000 and 100,000 drivers; the figures are in
// docs/matching.md.
//
// # Cost model
//
// The hot paths avoid the three costs that dominate a naive index:
//   - H3 calls (cgo, 1–2 µs each): a driver's cell is only recomputed once
//     it leaves the circle inscribed in its cell, and a query's origin cell is
//     memoised per ~100 m square.
//   - Trigonometry: ranking uses a local equirectangular distance (one
//     multiply by cos(latitude) per query, not per driver), accurate to well
//     under 0.1% at city scale; the same metric decides the search's stop, so
//     the answer is exact in that metric.
//   - Sorting: a bounded insertion keeps the best k; anything not better than
//     the current k-th is rejected with one comparison.
//
// Drivers that may not be offered (unavailable, on a trip, holding an open
// offer) are kept out of the cells altogether (SetEligible), so queries never
// scan them.
package geo

import (
	"math"
	"time"

	"github.com/uber/h3-go/v4"
)

// DefaultResolution is the H3 resolution of the index.
const DefaultResolution = 8

// LatLng is a WGS84 position in degrees.
type LatLng struct {
	Lat, Lng float64
}

// Candidate is one driver returned by Nearest.
type Candidate struct {
	ID        string
	Pos       LatLng
	DistanceM float64
	Seen      time.Time
}

// record is one driver. home is the bucket of the cell its position is in;
// it is a member of home's arrays (at pos) only while eligible.
type record struct {
	id       string
	pos      LatLng
	seen     int64 // unix nanoseconds
	home     *bucket
	at       int32
	eligible bool
}

// bucket is one H3 cell. Member positions are kept in flat arrays so a scan
// touches contiguous memory.
type bucket struct {
	cell h3.Cell
	shape

	lat, lng []float64
	seen     []int64
	slot     []int32

	// rings[r] are the cells at grid distance r, filled lazily; lowerM[r] is
	// a lower bound on the distance from the centre to any point of any cell
	// at grid distance r or more.
	rings  [][]*bucket
	lowerM []float64
}

// Index holds driver positions by cell. It is not safe for concurrent use:
// the dispatcher owns one and serialises access, because every query is
// followed by a decision (an offer) that must see the same state, so a
// reader/writer lock inside the index would not remove the outer one.
type Index struct {
	res     int
	edgeM   float64
	byID    map[string]int32
	recs    []record
	free    []int32
	buckets map[h3.Cell]*bucket
	// origins memoises query origin → nearby bucket per quantum (see
	// originQuantum), so a query costs no H3 call after the first in its
	// neighbourhood.
	origins map[uint64]*bucket
	count   int
}

// NewIndex returns an empty index at H3 resolution res (0 means the default).
func NewIndex(res int) *Index {
	if res <= 0 || res > 15 {
		res = DefaultResolution
	}
	return &Index{
		res:     res,
		edgeM:   h3.HexagonEdgeLengthAvgM(res),
		byID:    make(map[string]int32),
		buckets: make(map[h3.Cell]*bucket),
		origins: make(map[uint64]*bucket),
	}
}

// Resolution is the index's H3 resolution.
func (ix *Index) Resolution() int { return ix.res }

// Len is the number of indexed drivers, eligible or not.
func (ix *Index) Len() int { return ix.count }

// Set inserts or moves a driver, recording when it was seen. A new driver is
// eligible. On the steady path (a known driver still inside its cell) it is
// a map lookup and a few stores, with no allocation and no H3 call.
func (ix *Index) Set(id string, p LatLng, seen time.Time) {
	s, ok := ix.byID[id]
	if !ok {
		s = ix.alloc(id)
	}
	r := &ix.recs[s]
	r.pos, r.seen = p, seen.UnixNano()
	if h := r.home; h != nil && h.holds(p) {
		if r.eligible {
			h.lat[r.at], h.lng[r.at], h.seen[r.at] = p.Lat, p.Lng, r.seen
		}
		return
	}
	nb := ix.bucketFor(h3.LatLngToCell(h3.NewLatLng(p.Lat, p.Lng), ix.res))
	if r.eligible && r.home != nil {
		ix.leave(s)
	}
	r.home = nb
	if r.eligible {
		ix.join(s)
	}
}

// SetEligible says whether a driver may be returned by Nearest. Unknown ids
// are ignored: a driver enters the index with its first position.
func (ix *Index) SetEligible(id string, ok bool) {
	s, found := ix.byID[id]
	if !found {
		return
	}
	r := &ix.recs[s]
	if r.eligible == ok {
		return
	}
	r.eligible = ok
	if ok {
		ix.join(s)
	} else {
		ix.leave(s)
	}
}

// Remove drops a driver from the index; unknown ids are ignored.
func (ix *Index) Remove(id string) {
	s, ok := ix.byID[id]
	if !ok {
		return
	}
	if ix.recs[s].eligible {
		ix.leave(s)
	}
	ix.recs[s] = record{}
	delete(ix.byID, id)
	ix.free = append(ix.free, s)
	ix.count--
}

// Position returns a driver's last position and when it was seen.
func (ix *Index) Position(id string) (LatLng, time.Time, bool) {
	s, ok := ix.byID[id]
	if !ok {
		return LatLng{}, time.Time{}, false
	}
	r := &ix.recs[s]
	return r.pos, time.Unix(0, r.seen), true
}

func (ix *Index) alloc(id string) int32 {
	var s int32
	if n := len(ix.free); n > 0 {
		s, ix.free = ix.free[n-1], ix.free[:n-1]
	} else {
		s = int32(len(ix.recs))
		ix.recs = append(ix.recs, record{})
	}
	ix.recs[s] = record{id: id, eligible: true}
	ix.byID[id] = s
	ix.count++
	return s
}

// join appends the driver to its home bucket's arrays.
func (ix *Index) join(s int32) {
	r := &ix.recs[s]
	b := r.home
	if b == nil {
		return
	}
	r.at = int32(len(b.slot))
	b.lat = append(b.lat, r.pos.Lat)
	b.lng = append(b.lng, r.pos.Lng)
	b.seen = append(b.seen, r.seen)
	b.slot = append(b.slot, s)
}

// leave swap-removes the driver from its home bucket's arrays.
func (ix *Index) leave(s int32) {
	r := &ix.recs[s]
	b := r.home
	if b == nil {
		return
	}
	i, last := r.at, int32(len(b.slot)-1)
	if i != last {
		b.lat[i], b.lng[i], b.seen[i], b.slot[i] = b.lat[last], b.lng[last], b.seen[last], b.slot[last]
		ix.recs[b.slot[i]].at = i
	}
	b.lat, b.lng, b.seen, b.slot = b.lat[:last], b.lng[:last], b.seen[:last], b.slot[:last]
}

// bucketFor returns the cell's bucket, creating it (and measuring the cell)
// on first use. Buckets are kept when they empty: the city's cells are few
// and their arrays are reused.
func (ix *Index) bucketFor(c h3.Cell) *bucket {
	if b := ix.buckets[c]; b != nil {
		return b
	}
	b := &bucket{cell: c, shape: measure(c)}
	ix.buckets[c] = b
	return b
}

// ensureRings makes rings[0..r] available for b.
func (ix *Index) ensureRings(b *bucket, r int) {
	if r < len(b.rings) {
		return
	}
	k := max(2, r, 2*len(b.rings))
	disk := h3.GridDiskDistances(b.cell, k)
	rings := make([][]*bucket, len(disk))
	lower := make([]float64, len(disk))
	cos := cosLat(b.center.Lat)
	for i, ring := range disk {
		rings[i] = make([]*bucket, len(ring))
		lower[i] = math.Inf(1)
		for j, c := range ring {
			nb := ix.bucketFor(c)
			rings[i][j] = nb
			lower[i] = min(lower[i], planarM(b.center, nb.center, cos)-nb.outM)
		}
	}
	// Cells farther out on the grid are farther away: make the bound hold
	// for "ring r or beyond" by taking the minimum over the rings known.
	for i := len(lower) - 2; i >= 0; i-- {
		lower[i] = min(lower[i], lower[i+1])
	}
	b.rings, b.lowerM = rings, lower
}

// originQuantum is the memo grid for query origins, in cells per degree
// (about 110 m north–south).
const originQuantum = 1024

// origin returns a bucket whose centre is near p: the memoised bucket for
// p's quantum, or its neighbour whose centre is closest to p.
func (ix *Index) origin(p LatLng) *bucket {
	key := uint64(uint32(int32(math.Floor(p.Lat*originQuantum))))<<32 | uint64(uint32(int32(math.Floor(p.Lng*originQuantum))))
	b := ix.origins[key]
	if b == nil {
		b = ix.bucketFor(h3.LatLngToCell(h3.NewLatLng(p.Lat, p.Lng), ix.res))
		ix.origins[key] = b
		return b
	}
	cos := cosLat(p.Lat)
	if d := planarM(p, b.center, cos); d > b.inM {
		ix.ensureRings(b, 1)
		best := d
		for _, nb := range b.rings[1] {
			if dn := planarM(p, nb.center, cos); dn < best {
				b, best = nb, dn
			}
		}
	}
	return b
}

// Nearest returns up to k eligible drivers within radiusM of p, nearest
// first, among those seen at or after freshSince and for which skip (if not
// nil) is false. It allocates only the result; AppendNearest reuses one.
func (ix *Index) Nearest(p LatLng, k int, radiusM float64, freshSince time.Time, skip func(id string) bool) []Candidate {
	return ix.AppendNearest(nil, p, k, radiusM, freshSince, skip)
}

// AppendNearest is Nearest appending to dst[:0].
//
// The answer is exact: ring r of cells around the origin is searched only
// while a point in ring r or beyond could be closer than the k-th driver
// found so far (true distance, not ring number), and never beyond radiusM.
// Ties are broken by id, so the answer does not depend on insertion order.
func (ix *Index) AppendNearest(dst []Candidate, p LatLng, k int, radiusM float64, freshSince time.Time, skip func(id string) bool) []Candidate {
	dst = dst[:0]
	if k <= 0 || ix.count == 0 || radiusM <= 0 {
		return dst
	}
	o := ix.origin(p)
	cos := cosLat(p.Lat)
	fromCentre := planarM(p, o.center, cos)
	fresh := freshSince.UnixNano()
	if freshSince.IsZero() {
		fresh = math.MinInt64
	}
	// Work in scaled squared degrees: dy² + (dx·cos)² < limit.
	kx := cos * cos
	toDeg := 1 / metresPerDegree
	limit := radiusM * toDeg
	limit *= limit
	var top topK
	top.init(k, limit)
	for r := 0; ; r++ {
		ix.ensureRings(o, r)
		if r >= len(o.rings) {
			break // the whole disk was searched (only near a pentagon)
		}
		// The 0.999 and 1 m absorb the flat metric's error between the
		// cell geometry (measured from the cell centre) and the query.
		lb := (o.lowerM[r]-fromCentre)*0.999 - 1
		if lb > 0 && lb*toDeg*lb*toDeg > top.worst {
			break
		}
		for _, b := range o.rings[r] {
			if len(b.slot) == 0 {
				continue
			}
			// Skip a whole cell that cannot hold anything better: with the
			// origin cell scanned first, most of ring 1 is skipped here.
			if r > 0 {
				if dc := planarM(p, b.center, cos) - b.outM - 1; dc > 0 && dc*toDeg*dc*toDeg > top.worst {
					continue
				}
			}
			lats, lngs, seens := b.lat, b.lng, b.seen
			for i := range lats {
				dy := lats[i] - p.Lat
				dx := lngs[i] - p.Lng
				d2 := dy*dy + dx*dx*kx
				if d2 > top.worst || seens[i] < fresh {
					continue
				}
				// The id lives in another array (a likely cache miss), so it
				// is read only when needed: for skip, or to break a tie.
				s := b.slot[i]
				if d2 == top.worst && !top.wantsTie(ix, s) {
					continue
				}
				if skip != nil && skip(ix.recs[s].id) {
					continue
				}
				top.add(ix, d2, s)
			}
		}
	}
	for i := 0; i < top.n; i++ {
		r := &ix.recs[top.slot[i]]
		dst = append(dst, Candidate{ID: r.id, Pos: r.pos, DistanceM: math.Sqrt(top.d2[i]) * metresPerDegree,
			Seen: time.Unix(0, r.seen)})
	}
	return dst
}

// maxK bounds k so the working set of a query lives on the stack.
const maxK = 64

// topK keeps the k smallest (distance, id) pairs in order.
type topK struct {
	k, n  int
	worst float64 // a candidate must be at most this to enter
	d2    [maxK]float64
	slot  [maxK]int32
}

func (t *topK) init(k int, limit float64) {
	t.k, t.worst = min(k, maxK), limit
}

// less orders (d2, slot) pairs by distance, then id, so that the answer does
// not depend on the order drivers were inserted.
func less(ix *Index, d2a float64, a int32, d2b float64, b int32) bool {
	if d2a != d2b {
		return d2a < d2b
	}
	return ix.recs[a].id < ix.recs[b].id
}

// wantsTie reports whether a candidate at exactly the worst distance should
// enter: only when the set is not full, or it sorts before the worst by id.
func (t *topK) wantsTie(ix *Index, s int32) bool {
	return t.n < t.k || less(ix, t.worst, s, t.d2[t.n-1], t.slot[t.n-1])
}

func (t *topK) add(ix *Index, d2 float64, s int32) {
	i := t.n
	if i == t.k {
		i-- // drop the current worst
	} else {
		t.n++
	}
	for i > 0 && less(ix, d2, s, t.d2[i-1], t.slot[i-1]) {
		t.d2[i], t.slot[i] = t.d2[i-1], t.slot[i-1]
		i--
	}
	t.d2[i], t.slot[i] = d2, s
	if t.n == t.k {
		t.worst = t.d2[t.n-1]
	}
}

const earthRadiusM = 6371008.8

// metresPerDegree is the length of a degree of latitude on the mean sphere.
const metresPerDegree = earthRadiusM * math.Pi / 180

func cosLat(lat float64) float64 { return math.Cos(lat * math.Pi / 180) }

// planarM is the local equirectangular distance in metres, with longitude
// scaled by cos (the cosine of a latitude near both points). Within a city
// it differs from the great-circle distance by well under 0.1%.
func planarM(a, b LatLng, cos float64) float64 {
	dy := a.Lat - b.Lat
	dx := (a.Lng - b.Lng) * cos
	return math.Sqrt(dy*dy+dx*dx) * metresPerDegree
}

// PlanarDistanceM is the distance Nearest ranks by: local equirectangular
// at a's latitude.
func PlanarDistanceM(a, b LatLng) float64 { return planarM(a, b, cosLat(a.Lat)) }

// DistanceM is the great-circle distance between a and b in metres.
func DistanceM(a, b LatLng) float64 {
	const rad = math.Pi / 180
	dLat := (b.Lat - a.Lat) * rad
	dLng := (b.Lng - a.Lng) * rad
	s := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLng/2)*math.Sin(dLng/2)
	return 2 * earthRadiusM * math.Asin(math.Min(1, math.Sqrt(s)))
}
