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

// Cell is an H3 cell, of any resolution; 0 is no cell. Package geo is the
// only user of H3: other packages name cells by this type and ask geo about
// them.
type Cell h3.Cell

// CellOf returns the cell at resolution res that holds p.
func CellOf(p LatLng, res int) Cell {
	return Cell(h3.LatLngToCell(h3.NewLatLng(p.Lat, p.Lng), res))
}

// Center is the cell's centre.
func (c Cell) Center() LatLng {
	ll := h3.CellToLatLng(h3.Cell(c))
	return LatLng{Lat: ll.Lat, Lng: ll.Lng}
}

// Boundary is the cell's outline, its vertices in order.
func (c Cell) Boundary() []LatLng {
	b := h3.CellToBoundary(h3.Cell(c))
	out := make([]LatLng, len(b))
	for i, v := range b {
		out[i] = LatLng{Lat: v.Lat, Lng: v.Lng}
	}
	return out
}

// CellsInBox returns the cells at resolution res whose centres fall in the
// box south–north × west–east (degrees; the box must not cross the
// antimeridian).
func CellsInBox(south, west, north, east float64, res int) []Cell {
	poly := h3.GeoPolygon{GeoLoop: h3.GeoLoop{
		h3.NewLatLng(south, west), h3.NewLatLng(south, east), h3.NewLatLng(north, east), h3.NewLatLng(north, west),
	}}
	cells := h3.PolygonToCells(poly, res)
	out := make([]Cell, len(cells))
	for i, c := range cells {
		out[i] = Cell(c)
	}
	return out
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
// (0 if none): the same CellOf gives, without the cgo call while p is well
// inside last.
func (c *Cells) Cell(p LatLng, last Cell) Cell {
	if s := c.known[h3.Cell(last)]; s != nil && s.holds(p) {
		return last
	}
	cell := h3.LatLngToCell(h3.NewLatLng(p.Lat, p.Lng), c.res)
	if c.known[cell] == nil {
		s := measure(cell)
		c.known[cell] = &s
	}
	return Cell(cell)
}

// CellCenter is the centre of the H3 cell at res that holds p. It places a
// point no finer than its cell, for showing where something is without
// showing exactly where (the live map's riders: docs/map.md).
func CellCenter(p LatLng, res int) LatLng {
	return CellOf(p, res).Center()
}
