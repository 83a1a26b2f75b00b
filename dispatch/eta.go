package dispatch

import "time"

// ETA estimates how long a driver needs to reach a pickup. It is the one
// place the estimate is made: candidates are ranked by it and the batch
// policy minimises the sum of it.
//
// The estimate is straight-line distance × RoadFactor ÷ Speed. Streets do
// not run straight to the pickup: on a square grid the road distance between
// two random points is on average 4/π ≈ 1.27 times the straight line, and
// one-way streets and turns add more, hence 1.35. Speed is a door-to-door
// average in city traffic (25 km/h), not a speed limit.
//
// Because the estimate is a monotone function of distance, the nearest
// drivers are the soonest, and the supply index's exact nearest-k answers
// "soonest k". A richer model (road network, traffic, a driver's heading)
// would replace Pickup and rank a few more nearest candidates by it.
type ETA struct {
	RoadFactor float64 // road distance per straight-line metre (1.35)
	SpeedMPS   float64 // average speed to the pickup in m/s (6.94, i.e. 25 km/h)
}

func (e ETA) withDefaults() ETA {
	if e.RoadFactor <= 0 {
		e.RoadFactor = 1.35
	}
	if e.SpeedMPS <= 0 {
		e.SpeedMPS = 25 / 3.6
	}
	return e
}

// Pickup is the estimated time to drive distanceM of straight line.
func (e ETA) Pickup(distanceM float64) time.Duration {
	e = e.withDefaults()
	return time.Duration(distanceM * e.RoadFactor / e.SpeedMPS * float64(time.Second))
}
