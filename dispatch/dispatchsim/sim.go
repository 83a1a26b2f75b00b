// Package dispatchsim replays a generated day of demand and supply through
// the platform's own code and measures how good the matches were: match
// rate, pickup distance, rider wait. The real dispatcher (with the routes
// internal/platform gives it) and tripstate's real transitions (trip.Decide
// and the events it causes) run behind the real events.Router, on an
// in-memory log (events/memory) and a simulated clock; only the phones and
// tripstate's storage are the simulation's. A run is deterministic (same
// scenario and seed, the same events bit for bit: Result.Hash), takes no
// wall-clock time and touches no network. It exists to compare matching
// policies, which needs thousands of rides under the same conditions.
package dispatchsim

import (
	"container/heap"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hexride/hexride/dispatch"
	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/events/memory"
	"github.com/hexride/hexride/geo"
	"github.com/hexride/hexride/internal/platform"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
	"github.com/hexride/hexride/trip"
)

// Scenario is one generated day. Scale multiplies the fleet and the demand
// together, keeping their balance.
type Scenario struct {
	Seed  uint64
	Hours float64 // length of the run; 24 is a day
	// StartHour is the local hour the run starts at, for shorter runs.
	StartHour float64
	Scale     float64
	// Fleet is the number of drivers over the day (each works one shift).
	Fleet int
	// PeakRequestsPerSec is the demand at the busiest hour.
	PeakRequestsPerSec float64
	CityKM             float64
	// AcceptProb and IgnoreProb are a driver's answers to an offer after a
	// think time; the rest decline.
	AcceptProb, IgnoreProb float64
	// CancelProb is the share of riders who give up before a driver accepts.
	CancelProb float64
}

// DefaultScenario is the day the README's comparison runs: a 6 km city,
// about 46,000 requests, and a fleet that is busy but not short at the
// peaks (greedy matches about 95%). docs/matching.md shows how the
// comparison changes with the size of the fleet.
func DefaultScenario() Scenario {
	return Scenario{Seed: 1, Hours: 24, Scale: 1, Fleet: 1800, PeakRequestsPerSec: 1, CityKM: 6,
		AcceptProb: 0.85, IgnoreProb: 0.03, CancelProb: 0.05}
}

// demandByHour is the share of peak demand in each hour of the day: a
// morning and a larger evening peak, a quiet night.
var demandByHour = [24]float64{0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.45, 0.8, 1.0, 0.8, 0.6, 0.6,
	0.65, 0.6, 0.6, 0.65, 0.8, 1.0, 0.95, 0.8, 0.6, 0.5, 0.4, 0.25}

// Result is what one policy achieved on one scenario.
type Result struct {
	Policy                           string
	Requests, Accepted               int
	NoDrivers, Cancelled, Unfinished int
	Offers, Declines, Expiries       int
	MatchRate                        float64 // accepted / requests
	MeanPickupM, P90PickupM          float64
	MeanWait, P90Wait                time.Duration // request → driver at the pickup
	// Violations lists every broken invariant; it must be empty.
	Violations []string
	// Events is how many events were published, and Hash a hash of every
	// one of them in order: a run replayed with the same seed has the same.
	Events int
	Hash   string
}

// The simulated clock starts at midnight of a fixed day.
var day0 = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

var center = geo.LatLng{Lat: 37.7749, Lng: -122.4194}

const (
	thinkMean = 4 * time.Second  // a driver's time to answer an offer
	boarding  = 45 * time.Second // from arrival at the pickup to departure
	tick      = time.Second      // how often the dispatcher's clock runs
)

// Run replays the scenario through a dispatcher with the given
// configuration. Only Policy and BatchWindow of cfg normally differ between
// runs; its clock and logger are the simulation's.
func Run(sc Scenario, cfg dispatch.Config) Result {
	s := newSim(sc, cfg)
	ctx, stop := context.WithCancel(context.Background())
	done := s.start(ctx)
	s.run()
	stop()
	if err := <-done; err != nil {
		s.violate("router: %v", err)
	}
	return s.result()
}

type event struct {
	at  time.Time
	seq int
	fn  func()
}

type queue []*event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type driverState struct {
	id       string
	pos      geo.LatLng
	shiftEnd time.Time
	online   bool
	// trip and offer are what tripstate has recorded for the driver: the
	// accepted trip and the trip with an open offer.
	trip, offer string
	// offers are the offer pushes the phone has had, by trip.
	offers map[string]protocol.OfferMessage
	// driving are the trips whose drive the phone has begun.
	driving map[string]bool
}

// tripState is one trip as tripstate stores it, moved only by trip.Decide.
type tripState struct {
	t        ride.Trip
	exists   bool
	pickupM  float64
	accepted time.Time
}

type sim struct {
	sc      Scenario
	cfg     dispatch.Config
	rng     *rand.Rand
	now     time.Time
	end     time.Time
	q       queue
	seq     int
	ids     int
	ctx     context.Context
	bus     *memory.Bus
	d       *dispatch.Dispatcher
	drivers map[string]*driverState
	trips   map[string]*tripState
	order   []string // trip ids in request order

	offers, declines, expiries int
	violations                 []string
}

func newSim(sc Scenario, cfg dispatch.Config) *sim {
	if sc.Scale <= 0 {
		sc.Scale = 1
	}
	s := &sim{sc: sc, cfg: cfg, rng: rand.New(rand.NewPCG(sc.Seed, 0x5eed)), drivers: map[string]*driverState{},
		trips: map[string]*tripState{}, bus: memory.New()}
	s.now = day0.Add(time.Duration(sc.StartHour * float64(time.Hour)))
	s.end = s.now.Add(time.Duration(sc.Hours * float64(time.Hour)))
	// Phones' ping timing is not what this simulation studies (the platform
	// tests cover staleness), so idle drivers are never stale here.
	cfg.StaleAfter = 48 * time.Hour
	cfg.RetryEvery = tick
	cfg.NewID = func() string { s.ids++; return fmt.Sprintf("%032x", s.ids) }
	s.d = dispatch.New(cfg, s.bus, slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return s.now })
	return s
}

// start runs the router on the bus: the dispatcher's routes as the platform
// has them, tripstate's commands, the phones' pushes and the dead letters
// (each one a broken invariant). It returns once every route is listening.
func (s *sim) start(ctx context.Context) <-chan error {
	s.ctx = ctx
	routes := append(platform.Routes(platform.Parts{Dispatcher: s.d}),
		ev.Route{Group: trip.GroupCommands, Topic: ev.TopicTripCommands, Handler: ev.One(s.tripstate)},
		ev.Route{Group: "phones", Topic: ev.TopicUserPushes, Handler: ev.One(s.phone)},
		ev.Route{Reader: "violations", Topic: ev.TopicDeadLetters, Handler: ev.One(s.deadLetter)},
	)
	r := ev.NewRouter(s.bus, s.bus, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.Add(routes...)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	s.bus.WaitSubscribed(len(routes))
	return done
}

func (s *sim) at(t time.Time, fn func()) {
	s.seq++
	heap.Push(&s.q, &event{at: t, seq: s.seq, fn: fn})
}

func (s *sim) randomPoint() geo.LatLng {
	half := s.sc.CityKM * 500
	return s.offset(center, (s.rng.Float64()*2-1)*half, (s.rng.Float64()*2-1)*half)
}

func (s *sim) offset(p geo.LatLng, eastM, northM float64) geo.LatLng {
	const mPerDeg = 111195.0
	return geo.LatLng{Lat: p.Lat + northM/mPerDeg, Lng: p.Lng + eastM/(mPerDeg*math.Cos(p.Lat*math.Pi/180))}
}

// hotspots are where most demand starts (a station, downtown, a campus);
// drop-offs are spread over the city, so supply drifts away from demand
// and has to be matched back to it.
func (s *sim) pickup() geo.LatLng {
	if s.rng.Float64() < 0.4 {
		return s.randomPoint()
	}
	half := s.sc.CityKM * 500
	spots := [3][2]float64{{-0.4 * half, 0.3 * half}, {0.35 * half, 0.35 * half}, {0, -0.45 * half}}
	h := spots[s.rng.IntN(len(spots))]
	return s.offset(center, h[0]+s.rng.NormFloat64()*600, h[1]+s.rng.NormFloat64()*600)
}

func (s *sim) run() {
	s.scheduleShifts()
	s.scheduleRequests()
	// The dispatcher's clock, each tick scheduling the next (a day of them
	// at once would make every queue operation slower).
	last := s.end.Add(2 * time.Hour)
	var clock func()
	clock = func() {
		if err := s.d.Tick(s.ctx); err != nil {
			s.violate("dispatcher tick: %v", err)
		}
		if next := s.now.Add(tick); next.Before(last) {
			s.at(next, clock)
		}
	}
	s.at(s.now, clock)
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(*event)
		s.now = e.at
		e.fn()
		// Everything the event set off, and all that caused, until the
		// platform is quiet.
		if err := s.bus.Drain(s.ctx); err != nil {
			s.violate("%v", err)
		}
	}
}

// publish puts an event on the log, as the gateway does for a phone.
func (s *sim) publish(topic, typ, key string, payload any) {
	s.ids++
	e, err := ev.NewWithID(fmt.Sprintf("sim-%d", s.ids), typ, key, s.now, payload)
	if err != nil {
		panic(err) // the simulation's own structs
	}
	if err := s.bus.Publish(s.ctx, ev.Outgoing{Topic: topic, Env: e}); err != nil {
		s.violate("publish %s: %v", typ, err)
	}
}

func (s *sim) violate(format string, args ...any) {
	s.violations = append(s.violations, s.now.Format(time.TimeOnly)+": "+fmt.Sprintf(format, args...))
}

func (s *sim) deadLetter(_ context.Context, e ev.Envelope) ([]ev.Outgoing, error) {
	var dl ev.DeadLetter
	if err := e.DecodePayload(&dl); err != nil {
		return nil, err
	}
	s.violate("dead letter from %s: %s", dl.Group, dl.Reason)
	return nil, nil
}

func (s *sim) scheduleShifts() {
	n := int(float64(s.sc.Fleet) * s.sc.Scale)
	for i := range n {
		// Shifts follow demand: pick an hour by demand weight and work 8 to
		// 10 hours around it (repeating daily).
		var total float64
		for _, w := range demandByHour {
			total += w
		}
		x, h := s.rng.Float64()*total, 0
		for ; h < 23 && x > demandByHour[h]; h++ {
			x -= demandByHour[h]
		}
		start := day0.Add(time.Duration((float64(h)-1+s.rng.Float64())*float64(time.Hour)) - 4*time.Hour)
		length := time.Duration((8 + 2*s.rng.Float64()) * float64(time.Hour))
		// Repeat the shift daily so a run starting mid-day finds its fleet.
		for start.Add(length).Before(s.now) {
			start = start.Add(24 * time.Hour)
		}
		d := &driverState{id: fmt.Sprintf("d%05d", i), shiftEnd: start.Add(length),
			offers: map[string]protocol.OfferMessage{}, driving: map[string]bool{}}
		s.drivers[d.id] = d
		on := start
		if on.Before(s.now) {
			on = s.now
		}
		if on.After(s.end) {
			continue
		}
		s.at(on, func() { s.goOnline(d) })
		s.at(d.shiftEnd, func() { s.shiftOver(d) })
	}
}

func (s *sim) goOnline(d *driverState) {
	d.online, d.pos = true, s.randomPoint()
	s.publish(ev.TopicDriverEvents, ev.TypeDriverLocation, d.id, ride.DriverLocation{DriverID: d.id, Lat: d.pos.Lat, Lng: d.pos.Lng})
	s.publish(ev.TopicDriverEvents, ev.TypeDriverAvailability, d.id, ride.DriverAvailability{DriverID: d.id, Available: true})
}

// shiftOver takes an idle driver offline; one on a trip or holding an
// offer goes once it is free (see phone).
func (s *sim) shiftOver(d *driverState) {
	if d.online && d.trip == "" && d.offer == "" {
		d.online = false
		s.publish(ev.TopicDriverEvents, ev.TypeDriverAvailability, d.id, ride.DriverAvailability{DriverID: d.id, Available: false})
	}
}

func (s *sim) scheduleRequests() {
	peak := s.sc.PeakRequestsPerSec * s.sc.Scale
	n := 0
	// Thinning: draw arrivals at the peak rate, keep each with the hour's
	// share of the peak.
	for t := s.now; ; {
		t = t.Add(time.Duration(s.rng.ExpFloat64() / peak * float64(time.Second)))
		if !t.Before(s.end) {
			return
		}
		if s.rng.Float64() > demandByHour[t.Hour()] {
			continue
		}
		n++
		id := fmt.Sprintf("t%06d", n)
		pickup, dropoff := s.pickup(), s.randomPoint()
		cancelAfter := time.Duration(-1)
		if s.rng.Float64() < s.sc.CancelProb {
			cancelAfter = time.Duration((5 + 40*s.rng.Float64()) * float64(time.Second))
		}
		s.at(t, func() { s.request(id, pickup, dropoff, cancelAfter) })
	}
}

func (s *sim) request(id string, pickup, dropoff geo.LatLng, cancelAfter time.Duration) {
	s.publish(ev.TopicTripCommands, ev.TypeRideRequest, id, ride.TripCommand{TripID: id, UserID: "r-" + id, Role: "rider",
		Pickup: &ride.LatLng{Lat: pickup.Lat, Lng: pickup.Lng}, Dropoff: &ride.LatLng{Lat: dropoff.Lat, Lng: dropoff.Lng}})
	if cancelAfter >= 0 {
		s.at(s.now.Add(cancelAfter), func() { s.riderCancels(id) })
	}
}

// riderCancels: a rider who gives up does so before a driver accepts.
func (s *sim) riderCancels(id string) {
	tr := s.trips[id]
	if tr == nil || tr.t.State != ride.StateRequested && tr.t.State != ride.StateOffered {
		return
	}
	s.publish(ev.TopicTripCommands, ev.TypeTripCancel, id, ride.TripCommand{TripID: id, UserID: tr.t.RiderID, Role: "rider",
		Reason: "waited too long"})
}

func (s *sim) result() Result {
	r := Result{Policy: s.cfg.Policy, Offers: s.offers, Declines: s.declines, Expiries: s.expiries,
		Violations: s.violations, Events: s.bus.Records(), Hash: s.bus.Sum()}
	if r.Policy == "" {
		r.Policy = dispatch.PolicyGreedy
	}
	var pickups []float64
	var waits []time.Duration
	eta := s.cfg.ETA
	for _, id := range s.order {
		tr := s.trips[id]
		r.Requests++
		switch tr.t.State {
		case ride.StateCompleted, ride.StateAccepted, ride.StateArrived, ride.StateInProgress:
			r.Accepted++
			pickups = append(pickups, tr.pickupM)
			waits = append(waits, tr.accepted.Sub(tr.t.RequestedAt)+eta.Pickup(tr.pickupM))
		case ride.StateNoDrivers:
			r.NoDrivers++
		case ride.StateCancelled:
			r.Cancelled++
		default:
			r.Unfinished++
			s.violations = append(s.violations, fmt.Sprintf("trip %s never ended: %s", id, tr.t.State))
		}
	}
	r.Violations = s.violations
	if r.Requests > 0 {
		r.MatchRate = float64(r.Accepted) / float64(r.Requests)
	}
	if len(pickups) > 0 {
		slices.Sort(pickups)
		slices.Sort(waits)
		var sumP float64
		var sumW time.Duration
		for i := range pickups {
			sumP += pickups[i]
			sumW += waits[i]
		}
		r.MeanPickupM = sumP / float64(len(pickups))
		r.MeanWait = sumW / time.Duration(len(waits))
		i90 := int(math.Ceil(0.9*float64(len(pickups)))) - 1
		r.P90PickupM, r.P90Wait = pickups[i90], waits[i90]
	}
	return r
}

// WriteTable writes results side by side.
func WriteTable(w io.Writer, rs ...Result) {
	fmt.Fprintf(w, "| policy | requests | matched | no drivers | cancelled | mean pickup | p90 pickup | mean wait | p90 wait |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %d | %.1f%% | %d | %d | %.0f m | %.0f m | %.1f s | %.1f s |\n", r.Policy, r.Requests,
			100*r.MatchRate, r.NoDrivers, r.Cancelled, r.MeanPickupM, r.P90PickupM, r.MeanWait.Seconds(), r.P90Wait.Seconds())
	}
}
