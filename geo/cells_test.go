package geo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/uber/h3-go/v4"
)

// walk moves n vehicles in random directions at speedMPS, each position
// every stepS seconds, and calls f with each vehicle's index and position.
func walk(r *rand.Rand, n, steps int, speedMPS, stepS float64, f func(v int, p LatLng)) {
	sf := LatLng{37.7749, -122.4194}
	pos := make([]LatLng, n)
	for i := range pos {
		pos[i] = scatter(r, sf, 0.1)
	}
	for range steps {
		for i := range pos {
			heading := r.Float64() * 2 * math.Pi
			d := speedMPS * stepS / metresPerDegree
			pos[i].Lat += d * math.Cos(heading)
			pos[i].Lng += d * math.Sin(heading) / cosLat(pos[i].Lat)
			f(i, pos[i])
		}
	}
}

// TestCellsAgreeWithH3: whatever the resolution and however far a point
// moved since its last cell, Cells answers what LatLngToCell does.
func TestCellsAgreeWithH3(t *testing.T) {
	for _, tc := range []struct {
		res      int
		speedMPS float64
	}{
		{8, 10}, {8, 300}, {9, 10}, {7, 30}, {10, 5}, {8, 0.01},
	} {
		t.Run(fmt.Sprintf("res%d-%gmps", tc.res, tc.speedMPS), func(t *testing.T) {
			c := NewCells(tc.res)
			last := make([]Cell, 200)
			mismatches := 0
			walk(rand.New(rand.NewPCG(uint64(tc.res), 1)), len(last), 500, tc.speedMPS, 1, func(v int, p LatLng) {
				got := c.Cell(p, last[v])
				want := Cell(h3.LatLngToCell(h3.NewLatLng(p.Lat, p.Lng), tc.res))
				if got != want && mismatches < 5 {
					mismatches++
					t.Errorf("Cell(%v, last %v) = %v, LatLngToCell = %v", p, last[v], got, want)
				}
				last[v] = got
			})
		})
	}
	// A last cell the Cells never saw (another resolution, or garbage) is
	// only a hint.
	c := NewCells(8)
	p := LatLng{37.7749, -122.4194}
	want := Cell(h3.LatLngToCell(h3.NewLatLng(p.Lat, p.Lng), 8))
	for _, last := range []Cell{0, 12345, CellOf(p, 9)} {
		if got := c.Cell(p, last); got != want {
			t.Errorf("Cell(%v, last %v) = %v, want %v", p, last, got, want)
		}
	}
}

// BenchmarkCells: a vehicle at city speed pinging each second, located by
// Cells against a LatLngToCell call per ping.
//
//	go test ./geo -run XXX -bench Cells -benchmem
func BenchmarkCells(b *testing.B) {
	var pts []LatLng
	walk(rand.New(rand.NewPCG(1, 1)), 1000, 20, 10, 1, func(_ int, p LatLng) { pts = append(pts, p) })
	b.Run("Cells", func(b *testing.B) {
		c := NewCells(8)
		last := make([]Cell, 1000)
		i := 0
		for b.Loop() {
			v := i % 1000
			last[v] = c.Cell(pts[i%len(pts)], last[v])
			i++
		}
	})
	b.Run("LatLngToCell", func(b *testing.B) {
		i := 0
		for b.Loop() {
			p := pts[i%len(pts)]
			h3.LatLngToCell(h3.NewLatLng(p.Lat, p.Lng), 8)
			i++
		}
	})
}

// CellCenter gives every point of a cell the same answer, the cell's
// centre, which lies in that cell; points in different cells get different
// centres.
func TestCellCenter(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, res := range []int{7, 8, 9} {
		for range 500 {
			p := scatter(r, LatLng{37.7749, -122.4194}, 0.1)
			cell := h3.LatLngToCell(h3.NewLatLng(p.Lat, p.Lng), res)
			c := CellCenter(p, res)
			ll := h3.CellToLatLng(cell)
			if c.Lat != ll.Lat || c.Lng != ll.Lng {
				t.Fatalf("res %d: CellCenter(%v) = %v, want the centre of %v, %v", res, p, c, cell, ll)
			}
			if got := h3.LatLngToCell(h3.NewLatLng(c.Lat, c.Lng), res); got != cell {
				t.Fatalf("res %d: the centre %v of %v is in %v", res, c, cell, got)
			}
			if c == p {
				t.Fatalf("res %d: CellCenter(%v) is the point itself", res, p)
			}
		}
	}
}

// TestCellWrappers: CellOf, Center, Boundary and CellsInBox answer what H3
// does, for the packages that must not call it themselves.
func TestCellWrappers(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, res := range []int{7, 8, 9} {
		for range 200 {
			p := scatter(r, LatLng{37.7749, -122.4194}, 0.1)
			h := h3.LatLngToCell(h3.NewLatLng(p.Lat, p.Lng), res)
			c := CellOf(p, res)
			if c != Cell(h) {
				t.Fatalf("CellOf(%v, %d) = %v, want %v", p, res, c, h)
			}
			if ll := h3.CellToLatLng(h); c.Center() != (LatLng{ll.Lat, ll.Lng}) {
				t.Fatalf("Center of %v = %v, want %v", c, c.Center(), ll)
			}
			hb, b := h3.CellToBoundary(h), c.Boundary()
			if len(b) != len(hb) {
				t.Fatalf("Boundary of %v has %d vertices, want %d", c, len(b), len(hb))
			}
			for i := range b {
				if b[i] != (LatLng{hb[i].Lat, hb[i].Lng}) {
					t.Fatalf("Boundary of %v: vertex %d = %v, want %v", c, i, b[i], hb[i])
				}
			}
		}
	}
	south, west, north, east := 37.75, -122.45, 37.80, -122.40
	cells := CellsInBox(south, west, north, east, 8)
	if len(cells) < 25 || len(cells) > 45 { // about 24 km² of 0.74 km² cells
		t.Fatalf("%d cells at res 8 in a 5.5 x 4.4 km box", len(cells))
	}
	seen := map[Cell]bool{}
	for _, c := range cells {
		ctr := c.Center()
		if seen[c] || ctr.Lat < south || ctr.Lat > north || ctr.Lng < west || ctr.Lng > east || CellOf(ctr, 8) != c {
			t.Fatalf("cell %v (centre %v) repeated, outside the box or not at res 8", c, ctr)
		}
		seen[c] = true
	}
	if !seen[CellOf(LatLng{37.7749, -122.4194}, 8)] {
		t.Fatal("the cell of a point well inside the box is missing")
	}
}
