package geo

import (
	"math"

	"github.com/uber/h3-go/v4"
)

// shape is what the index and Cells know of a cell to place points without
// asking H3: its centre and two circles around it.
type shape struct {
	center LatLng
	// inM: every point this close to the centre is inside the cell.
	// outM: every point of the cell is this close to the centre.
	inM, outM float64
}

func measure(c h3.Cell) shape {
	ll := h3.CellToLatLng(c)
	s := shape{center: LatLng{ll.Lat, ll.Lng}, inM: math.Inf(1)}
	cos := cosLat(s.center.Lat)
	for _, v := range h3.CellToBoundary(c) {
		d := planarM(s.center, LatLng{v.Lat, v.Lng}, cos)
		s.outM = max(s.outM, d)
		s.inM = min(s.inM, d)
	}
	// The inscribed circle of a hexagon is √3/2 of its vertex circle; keep
	// a margin for the cell's slight irregularity and the flat metric.
	s.inM *= math.Sqrt(3) / 2 * 0.97
	s.outM = s.outM*1.01 + 1
	return s
}

// holds reports whether p is certainly inside the cell (false near its
// edge, where only H3 can tell).
func (s *shape) holds(p LatLng) bool {
	return planarM(p, s.center, cosLat(s.center.Lat)) < s.inM
}

// Cells finds the H3 cell of moving points. LatLngToCell is a cgo call of
// over a microsecond; a vehicle pinging every few seconds stays in one
// resolution-8 cell for about a minute, so Cell answers most pings from the
// point's last cell without it. The zero value is not usable; Cells is not
// safe for concurrent use.
type Cells struct {
	res   int
	known map[h3.Cell]*shape
}

// NewCells locates points at the H3 resolution res.
func NewCells(res int) *Cells {
	return &Cells{res: res, known: make(map[h3.Cell]*shape)}
}

// Cell returns the cell of p, given the cell the same point was in last
// (0 if none): the same h3.LatLngToCell gives, without the call while p is
// well inside last.
func (c *Cells) Cell(p LatLng, last h3.Cell) h3.Cell {
	if s := c.known[last]; s != nil && s.holds(p) {
		return last
	}
	cell := h3.LatLngToCell(h3.NewLatLng(p.Lat, p.Lng), c.res)
	if c.known[cell] == nil {
		s := measure(cell)
		c.known[cell] = &s
	}
	return cell
}

// CellCenter is the centre of the H3 cell at res that holds p. It places a
// point no finer than its cell, for showing where something is without
// showing exactly where (the live map's riders: docs/map.md).
func CellCenter(p LatLng, res int) LatLng {
	ll := h3.CellToLatLng(h3.LatLngToCell(h3.NewLatLng(p.Lat, p.Lng), res))
	return LatLng{Lat: ll.Lat, Lng: ll.Lng}
}
