// Package geo owns the supply index: where available drivers are, by H3
// cell, and the exact nearest-driver query the dispatcher runs on it. It is a
// plain data structure with no I/O and knows nothing of Kafka or trips.
//
// Resolution 8 (hexagons of about 0.74 km²; edge about 0.46 km) is the
// default: a 2–5 km pickup search covers tens to a few hundred cells, and a
// driver moving at city speed changes cell about once a minute, so most pings
// update a position without touching the cell map.
package geo

import (
	"math"
	"sort"
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

type driver struct {
	pos  LatLng
	cell h3.Cell
	seen time.Time
}

// Index holds driver positions by cell. It is not safe for concurrent use:
// the dispatcher owns one and serialises access, because every query is
// followed by a decision that must see the same state.
type Index struct {
	res     int
	drivers map[string]*driver
	cells   map[h3.Cell]map[string]*driver
	// minRingStepM is a lower bound on how much farther each further ring of
	// cells is from the origin point, used to stop searching exactly.
	minRingStepM float64
}

// NewIndex returns an empty index at H3 resolution res (0 means the default).
func NewIndex(res int) *Index {
	if res <= 0 || res > 15 {
		res = DefaultResolution
	}
	// Centres of adjacent hexagons are sqrt(3)·edge apart; the smallest edge
	// at a resolution is about 0.8 of the average (cells shrink away from
	// the icosahedron's face centres), so ring k is at least 1.5·0.8·edge·k
	// from the origin cell's centre.
	edge := h3.HexagonEdgeLengthAvgM(res)
	return &Index{
		res:          res,
		drivers:      make(map[string]*driver),
		cells:        make(map[h3.Cell]map[string]*driver),
		minRingStepM: 1.5 * 0.8 * edge,
	}
}

// Len is the number of indexed drivers.
func (ix *Index) Len() int { return len(ix.drivers) }

// Set inserts or moves a driver, recording when it was seen. The cell is only
// recomputed when the driver may have left it.
func (ix *Index) Set(id string, p LatLng, seen time.Time) {
	d, ok := ix.drivers[id]
	if !ok {
		d = &driver{}
		ix.drivers[id] = d
	}
	if ok && d.pos == p {
		d.seen = seen
		return
	}
	cell := h3.LatLngToCell(h3.NewLatLng(p.Lat, p.Lng), ix.res)
	if ok && cell != d.cell {
		ix.removeFromCell(id, d.cell)
	}
	if !ok || cell != d.cell {
		m := ix.cells[cell]
		if m == nil {
			m = make(map[string]*driver)
			ix.cells[cell] = m
		}
		m[id] = d
	}
	d.pos, d.cell, d.seen = p, cell, seen
}

// Remove drops a driver from the index; unknown ids are ignored.
func (ix *Index) Remove(id string) {
	d, ok := ix.drivers[id]
	if !ok {
		return
	}
	ix.removeFromCell(id, d.cell)
	delete(ix.drivers, id)
}

func (ix *Index) removeFromCell(id string, c h3.Cell) {
	if m := ix.cells[c]; m != nil {
		delete(m, id)
		if len(m) == 0 {
			delete(ix.cells, c)
		}
	}
}

// Position returns a driver's last position and when it was seen.
func (ix *Index) Position(id string) (LatLng, time.Time, bool) {
	d, ok := ix.drivers[id]
	if !ok {
		return LatLng{}, time.Time{}, false
	}
	return d.pos, d.seen, true
}

// Nearest returns up to k drivers within radiusM of p, nearest first, among
// those seen at or after freshSince and for which skip (if not nil) is false.
// The answer is exact: rings are searched outwards until no unsearched cell
// can hold a driver closer than the k-th found.
func (ix *Index) Nearest(p LatLng, k int, radiusM float64, freshSince time.Time, skip func(id string) bool) []Candidate {
	if k <= 0 || len(ix.drivers) == 0 {
		return nil
	}
	origin := h3.LatLngToCell(h3.NewLatLng(p.Lat, p.Lng), ix.res)
	// The origin point can sit anywhere in its cell, so allow two cell radii
	// of slack on top of the ring bound.
	slack := 2 * ix.minRingStepM / 1.2 / 0.8
	maxRing := int(math.Ceil((radiusM+slack)/ix.minRingStepM)) + 1
	var found []Candidate
	var rings [][]h3.Cell
	for ring := 0; ring <= maxRing; ring++ {
		if len(found) >= k {
			lower := float64(ring)*ix.minRingStepM - slack
			if lower > found[k-1].DistanceM {
				break
			}
		}
		if float64(ring)*ix.minRingStepM-slack > radiusM {
			break
		}
		if ring >= len(rings) {
			// Grow the disk geometrically so each ring is computed about once.
			rings = h3.GridDiskDistances(origin, min(maxRing, max(2, 2*ring)))
		}
		for _, c := range rings[ring] {
			for id, d := range ix.cells[c] {
				if d.seen.Before(freshSince) || (skip != nil && skip(id)) {
					continue
				}
				dist := DistanceM(p, d.pos)
				if dist > radiusM {
					continue
				}
				found = insertTopK(found, Candidate{ID: id, Pos: d.pos, DistanceM: dist, Seen: d.seen}, k)
			}
		}
	}
	return found
}

// insertTopK keeps found sorted by distance (then id, for determinism) and at
// most k long.
func insertTopK(found []Candidate, c Candidate, k int) []Candidate {
	i := sort.Search(len(found), func(i int) bool {
		f := found[i]
		return f.DistanceM > c.DistanceM || (f.DistanceM == c.DistanceM && f.ID > c.ID)
	})
	if i >= k {
		return found
	}
	if len(found) < k {
		found = append(found, Candidate{})
	}
	copy(found[i+1:], found[i:len(found)-1])
	found[i] = c
	return found
}

const earthRadiusM = 6371008.8

// DistanceM is the great-circle distance between a and b in metres.
func DistanceM(a, b LatLng) float64 {
	const rad = math.Pi / 180
	dLat := (b.Lat - a.Lat) * rad
	dLng := (b.Lng - a.Lng) * rad
	s := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLng/2)*math.Sin(dLng/2)
	return 2 * earthRadiusM * math.Asin(math.Min(1, math.Sqrt(s)))
}
