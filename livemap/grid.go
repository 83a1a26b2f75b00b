package livemap

import (
	"fmt"

	"github.com/hexride/hexride/geo"
	"github.com/hexride/hexride/ride"
)

// MaxGridCells bounds the grid Grid draws: a map background, not a tiling
// of the planet.
const MaxGridCells = 50_000

// Grid outlines the H3 cells at res whose centres fall in the box, so the
// page can draw the grid without an H3 library of its own.
func Grid(south, west, north, east float64, res int) ([][]ride.LatLng, error) {
	if !(south < north && west < east) || south < -90 || north > 90 || west < -180 || east > 180 {
		return nil, fmt.Errorf("livemap: grid box %v,%v–%v,%v: want south<north and west<east within WGS84", south, west, north, east)
	}
	if res < 0 || res > 15 {
		return nil, fmt.Errorf("livemap: H3 resolution %d: want 0 to 15", res)
	}
	cells := geo.CellsInBox(south, west, north, east, res)
	if len(cells) > MaxGridCells {
		return nil, fmt.Errorf("livemap: grid of %d cells at resolution %d is more than %d: use a smaller box or a coarser resolution", len(cells), res, MaxGridCells)
	}
	out := make([][]ride.LatLng, len(cells))
	for i, c := range cells {
		b := c.Boundary()
		loop := make([]ride.LatLng, len(b))
		for j, v := range b {
			loop[j] = ride.LatLng{Lat: v.Lat, Lng: v.Lng}
		}
		out[i] = loop
	}
	return out, nil
}
