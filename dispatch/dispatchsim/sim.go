// Package dispatchsim replays a generated day of demand and supply through
// the real matching code (dispatch.Dispatcher) and measures how good the
// matches were: match rate, pickup distance, rider wait. It stands in for
// tripstate and the phones with a discrete-event loop on a simulated clock
// (its trips move only by trip.Decide, tripstate's own rules, so an accept
// after the offer expired is refused here as it is there), so a run is
// deterministic (same scenario and seed, same result), takes no
// wall-clock time and touches no network. It exists to compare matching
// policies, which needs thousands of rides under the same conditions.
package dispatchsim

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hexride/hexride/dispatch"
	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/geo"
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
	s.run()
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
	trip     string // accepted trip
	offer    string // trip with an open offer
}

// tripState is one trip as tripstate would store it, moved only by
// trip.Decide.
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
	d       *dispatch.Dispatcher
	pending []ev.Outgoing
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
		trips: map[string]*tripState{}}
	s.now = day0.Add(time.Duration(sc.StartHour * float64(time.Hour)))
	s.end = s.now.Add(time.Duration(sc.Hours * float64(time.Hour)))
	// Phones' ping timing is not what this simulation studies (the platform
	// tests cover staleness), so idle drivers are never stale here.
	cfg.StaleAfter = 48 * time.Hour
	cfg.RetryEvery = tick
	s.d = dispatch.New(cfg, s, slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return s.now })
	return s
}

// Publish receives the dispatcher's decisions; they are applied, in
// order, once the dispatcher call that made them returns.
func (s *sim) Publish(_ context.Context, outs ...ev.Outgoing) error {
	s.pending = append(s.pending, outs...)
	return nil
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
	for t := s.now; t.Before(s.end.Add(2 * time.Hour)); t = t.Add(tick) {
		s.at(t, func() {
			s.call(func(ctx context.Context) error { return s.d.Tick(ctx) })
		})
	}
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(*event)
		s.now = e.at
		e.fn()
	}
}

// call runs one dispatcher method and then applies everything it decided,
// and everything that caused, until the system is quiet.
func (s *sim) call(fn func(context.Context) error) {
	if err := fn(context.Background()); err != nil {
		s.violations = append(s.violations, fmt.Sprintf("%s: dispatcher: %v", s.now.Format(time.TimeOnly), err))
	}
	for len(s.pending) > 0 {
		o := s.pending[0]
		s.pending = s.pending[1:]
		s.apply(o.Env)
	}
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
		d := &driverState{id: fmt.Sprintf("d%05d", i), shiftEnd: start.Add(length)}
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

func (s *sim) driverEvent(typ, id string, payload any) {
	e, err := ev.New(typ, id, s.now, payload)
	if err != nil {
		panic(err)
	}
	s.call(func(ctx context.Context) error { return s.d.HandleDriverEvent(ctx, e) })
}

func (s *sim) goOnline(d *driverState) {
	d.online, d.pos = true, s.randomPoint()
	s.driverEvent(ev.TypeDriverLocation, d.id, ride.DriverLocation{DriverID: d.id, Lat: d.pos.Lat, Lng: d.pos.Lng})
	s.driverEvent(ev.TypeDriverAvailability, d.id, ride.DriverAvailability{DriverID: d.id, Available: true})
}

// shiftOver takes an idle driver offline; one on a trip finishes it first.
func (s *sim) shiftOver(d *driverState) {
	if d.online && d.trip == "" && d.offer == "" {
		d.online = false
		s.driverEvent(ev.TypeDriverAvailability, d.id, ride.DriverAvailability{DriverID: d.id, Available: false})
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
	tr := &tripState{}
	u, ok := s.decide(tr, ev.TypeRideRequest, "req-"+id, ride.TripCommand{TripID: id, UserID: "r-" + id, Role: "rider",
		Pickup: &ride.LatLng{Lat: pickup.Lat, Lng: pickup.Lng}, Dropoff: &ride.LatLng{Lat: dropoff.Lat, Lng: dropoff.Lng}})
	if !ok {
		return
	}
	s.trips[id] = tr
	s.order = append(s.order, id)
	s.publishTrip(u)
	if cancelAfter >= 0 {
		s.at(s.now.Add(cancelAfter), func() { s.riderCancels(tr) })
	}
}

// decide is tripstate applying one command to tr: trip.Decide, the same
// rules, on the simulated clock. It reports false if tripstate would refuse
// the command (a dispatcher command the trip has moved past, an answer to an
// offer that closed meanwhile); a malformed command is a violation too.
func (s *sim) decide(tr *tripState, typ, id string, cmd ride.TripCommand) (ride.TripUpdated, bool) {
	x, err := trip.Decide(tr.t, tr.exists, trip.Command{Type: typ, ID: id, At: s.now, TripCommand: cmd})
	if err != nil {
		var r *trip.Rejection
		if !errors.As(err, &r) {
			s.violate("%s on trip %s: %v", typ, cmd.TripID, err)
		}
		return ride.TripUpdated{}, false
	}
	tr.t, tr.exists = x.Update.Trip, true
	return x.Update, true
}

// phoneCommand is a command from the rider's or driver's phone.
func (s *sim) phoneCommand(tr *tripState, typ, role, user string, cmd ride.TripCommand) (ride.TripUpdated, bool) {
	cmd.TripID, cmd.UserID, cmd.Role = tr.t.TripID, user, role
	return s.decide(tr, typ, fmt.Sprintf("%s-%s-v%d", typ, tr.t.TripID, tr.t.Version), cmd)
}

// publishTrip is tripstate's trip.updated, delivered to the dispatcher.
func (s *sim) publishTrip(u ride.TripUpdated) {
	e, err := ev.New(ev.TypeTripUpdated, u.Trip.TripID, s.now, u)
	if err != nil {
		panic(err)
	}
	s.call(func(ctx context.Context) error {
		outs, err := s.d.HandleTripEvent(ctx, e)
		s.pending = append(s.pending, outs...)
		return err
	})
}

func (s *sim) violate(format string, args ...any) {
	s.violations = append(s.violations, s.now.Format(time.TimeOnly)+": "+fmt.Sprintf(format, args...))
}

// apply is tripstate applying a dispatcher command, checking the
// invariants every policy must keep on the way.
func (s *sim) apply(e ev.Envelope) {
	var cmd ride.TripCommand
	if err := e.DecodePayload(&cmd); err != nil {
		s.violate("undecodable command: %v", err)
		return
	}
	tr := s.trips[cmd.TripID]
	if tr == nil {
		s.violate("command %s for unknown trip %s", e.Type, cmd.TripID)
		return
	}
	switch e.Type {
	case ev.TypeDispatchOffer:
		d := s.drivers[cmd.DriverID]
		switch {
		case d == nil || !d.online:
			s.violate("offer of %s to offline driver %s", tr.t.TripID, cmd.DriverID)
		case d.offer != "":
			s.violate("driver %s offered %s while holding an offer for %s", d.id, tr.t.TripID, d.offer)
		case d.trip != "":
			s.violate("driver %s offered %s while on trip %s", d.id, tr.t.TripID, d.trip)
		case slices.Contains(tr.t.Offered, d.id):
			s.violate("driver %s offered %s a second time", d.id, tr.t.TripID)
		}
		if d == nil {
			return
		}
		u, ok := s.decide(tr, e.Type, e.ID, cmd)
		if !ok {
			return // tripstate rejects it; the dispatcher learns from the trip
		}
		s.offers++
		o := *u.Trip.Offer
		d.offer = tr.t.TripID
		s.publishTrip(u)
		think := time.Duration(s.rng.ExpFloat64() * float64(thinkMean))
		switch x := s.rng.Float64(); {
		case x < s.sc.AcceptProb:
			s.at(s.now.Add(think), func() { s.driverAnswers(tr, d, o, true) })
		case x < s.sc.AcceptProb+s.sc.IgnoreProb:
			// No answer: the dispatcher's expiry closes the offer.
		default:
			s.at(s.now.Add(think), func() { s.driverAnswers(tr, d, o, false) })
		}
	case ev.TypeDispatchExpire:
		if u, ok := s.decide(tr, e.Type, e.ID, cmd); ok {
			s.expiries++
			s.drivers[u.EndedOffer.DriverID].offer = ""
			s.publishTrip(u)
		}
	case ev.TypeDispatchNoDrivers:
		if u, ok := s.decide(tr, e.Type, e.ID, cmd); ok {
			s.endSearch(u)
		}
	default:
		s.violate("unexpected command %s", e.Type)
	}
}

// endSearch publishes u, which ended a trip that had no driver yet, and
// frees the driver whose offer it closed.
func (s *sim) endSearch(u ride.TripUpdated) {
	o := u.EndedOffer
	if o != nil {
		s.drivers[o.DriverID].offer = ""
	}
	s.publishTrip(u)
	if o != nil {
		s.shiftOverIfDue(s.drivers[o.DriverID])
	}
}

func (s *sim) shiftOverIfDue(d *driverState) {
	if !s.now.Before(d.shiftEnd) {
		s.shiftOver(d)
	}
}

// riderCancels: a rider who gives up does so before a driver accepts.
func (s *sim) riderCancels(tr *tripState) {
	if tr.t.State != ride.StateRequested && tr.t.State != ride.StateOffered {
		return
	}
	if u, ok := s.phoneCommand(tr, ev.TypeTripCancel, ride.RoleRider, tr.t.RiderID, ride.TripCommand{Reason: "waited too long"}); ok {
		s.endSearch(u)
	}
}

func (s *sim) driverAnswers(tr *tripState, d *driverState, o ride.Offer, accept bool) {
	typ := ev.TypeOfferDecline
	if accept {
		typ = ev.TypeOfferAccept
	}
	u, ok := s.phoneCommand(tr, typ, ride.RoleDriver, d.id, ride.TripCommand{OfferID: o.OfferID})
	if !ok {
		return // too late: expired, cancelled or given up
	}
	if !accept {
		s.declines++
		d.offer = ""
		s.publishTrip(u)
		s.shiftOverIfDue(d)
		return
	}
	d.offer, d.trip = "", tr.t.TripID
	tr.pickupM, tr.accepted = o.PickupDistanceM, s.now
	s.publishTrip(u)
	eta := s.cfg.ETA
	pickup := geo.LatLng{Lat: tr.t.Pickup.Lat, Lng: tr.t.Pickup.Lng}
	dropoff := geo.LatLng{Lat: tr.t.Dropoff.Lat, Lng: tr.t.Dropoff.Lng}
	arrive := s.now.Add(eta.Pickup(o.PickupDistanceM))
	start := arrive.Add(boarding)
	done := start.Add(eta.Pickup(geo.DistanceM(pickup, dropoff)))
	drive := func(typ string) {
		u, ok := s.phoneCommand(tr, typ, ride.RoleDriver, d.id, ride.TripCommand{})
		if !ok {
			s.violate("%s by %s refused on trip %s in %s", typ, d.id, tr.t.TripID, tr.t.State)
			return
		}
		if typ == ev.TypeTripComplete {
			d.trip, d.pos = "", dropoff
		}
		s.publishTrip(u)
	}
	s.at(arrive, func() { drive(ev.TypeTripArrive) })
	s.at(start, func() { drive(ev.TypeTripStart) })
	s.at(done, func() {
		drive(ev.TypeTripComplete)
		s.driverEvent(ev.TypeDriverLocation, d.id, ride.DriverLocation{DriverID: d.id, Lat: d.pos.Lat, Lng: d.pos.Lng})
		s.shiftOverIfDue(d)
	})
}

func (s *sim) result() Result {
	r := Result{Policy: s.cfg.Policy, Offers: s.offers, Declines: s.declines, Expiries: s.expiries,
		Violations: s.violations}
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
