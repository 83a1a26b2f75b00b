package sim

// Street is one street of the grid from edge to edge, for drawing the city
// (the live map draws it under the drivers).
type Street struct {
	A, B     LatLng
	Arterial bool
}

// Streets lists every street of the grid: one segment per grid line in each
// direction, arterials marked.
func (c *City) Streets() []Street {
	out := make([]Street, 0, 2*c.n)
	for i := 0; i < c.n; i++ {
		v := float64(i)*BlockM - c.half
		out = append(out,
			Street{A: c.LatLngOf(v, -c.half), B: c.LatLngOf(v, c.half), Arterial: arterialLine(i)}, // north-south
			Street{A: c.LatLngOf(-c.half, v), B: c.LatLngOf(c.half, v), Arterial: arterialLine(i)}, // east-west
		)
	}
	return out
}
