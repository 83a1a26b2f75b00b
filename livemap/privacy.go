package livemap

import (
	"github.com/hexride/hexride/geo"
	"github.com/hexride/hexride/ride"
)

// RiderPointResolution is the H3 resolution at which the map shows where
// riders are: a waiting request's pickup and a trip's pickup and drop-off
// are the centre of their resolution-8 cell (about 0.74 km², edge about
// 0.46 km; a point is up to about half a kilometre from where the rider
// stands), never the point itself. That is a neighbourhood of 10–20
// blocks, enough to see demand and draw a trip, too coarse to find a
// doorstep. It is fixed, not the hexagon layer's Config.Resolution, so that
// a finer layer cannot make riders finer too. Why 8: docs/map.md.
const RiderPointResolution = 8

// riderPoint is what the map keeps, and so all it can ever show, of a
// rider's point.
func riderPoint(p ride.LatLng) ride.LatLng {
	c := geo.CellCenter(geo.LatLng{Lat: p.Lat, Lng: p.Lng}, RiderPointResolution)
	return ride.LatLng{Lat: c.Lat, Lng: c.Lng}
}
