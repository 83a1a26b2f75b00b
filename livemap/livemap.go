// Package livemap owns the live map's picture of the city. It folds the
// platform's driver and trip events into one aggregate (online drivers and
// their state, waiting and active trips, available drivers and open requests
// per H3 cell, and the dispatch figures of the last minute) and turns it into
// compact frames at a bounded rate for any number of viewers: one shared
// delta per tick, a snapshot for a viewer that missed a frame, and the
// latest frame always wins over an unsent one, so a slow viewer costs
// nothing but its own frames.
//
// It reads the event log like any other consumer (see Run) and calls no
// service. Rider identities never leave it: trips and drivers are named on
// the wire by small opaque slot numbers, and a trip's details name its
// driver but never its rider.
package livemap

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/geo"
	"github.com/hexride/hexride/ride"
)

// Driver states on the wire (the "state" of a driver entry).
const (
	DriverUnavailable = 0 // online (pinging) but not taking rides
	DriverAvailable   = 1
	DriverOffered     = 2 // holds an open offer
	DriverEnRoute     = 3 // accepted a trip, driving to (or waiting at) the pickup
	DriverOnTrip      = 4 // rider on board
)

// DriverStateNames names the driver state codes, for details and docs.
var DriverStateNames = []string{"unavailable", "available", "offered", "en_route", "on_trip"}

// Trip state codes on the wire: only states that are drawn. Terminal trips
// leave the map.
const (
	TripRequested  = 1
	TripOffered    = 2
	TripAccepted   = 3
	TripArrived    = 4
	TripInProgress = 5
)

var tripCodes = map[string]int{
	ride.StateRequested:  TripRequested,
	ride.StateOffered:    TripOffered,
	ride.StateAccepted:   TripAccepted,
	ride.StateArrived:    TripArrived,
	ride.StateInProgress: TripInProgress,
}

// Config of an aggregator. Zero values take the defaults.
type Config struct {
	// StaleAfter is how long a driver stays on the map after its last ping
	// (15 s, the dispatcher's own bound: a driver it would not offer is not
	// shown as online).
	StaleAfter time.Duration
	// Resolution of the supply and demand hexagons (8: cells of about
	// 0.74 km², 10–20 blocks, which reads as neighbourhoods at city zoom).
	Resolution int
	// History is how many state changes and positions a driver or trip
	// keeps for its details (20).
	History int
	// MaxCells bounds the hexagons the layer remembers (20,000, a region
	// far larger than a city at resolution 8), so a stream of far-flung
	// positions cannot grow memory without bound.
	MaxCells int
	// Window is the span of the live figures (1 minute).
	Window time.Duration
}

func (c Config) withDefaults() Config {
	if c.StaleAfter <= 0 {
		c.StaleAfter = 15 * time.Second
	}
	if c.Resolution <= 0 {
		c.Resolution = 8
	}
	if c.History <= 0 {
		c.History = 20
	}
	if c.MaxCells <= 0 {
		c.MaxCells = 20_000
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	return c
}

// Validate reports a configuration the aggregator cannot run with.
func (c Config) Validate() error {
	if c.Resolution < 0 || c.Resolution > 15 {
		return fmt.Errorf("livemap: H3 resolution %d: want 0 to 15", c.Resolution)
	}
	return nil
}

// HistoryEntry is one remembered change of a driver or trip.
type HistoryEntry struct {
	At   string `json:"at"`
	What string `json:"what"`
}

type driver struct {
	id        string
	slot      int32 // -1 while not on the map
	hasPos    bool
	lat, lng  float64
	speed     *float64
	lastPing  time.Time // the gateway's receive time of the last ping
	seen      time.Time // the latest event about this driver
	available bool
	offerTrip string // trip with this driver's open offer
	trip      string // assigned trip (ACCEPTED, ARRIVED, IN_PROGRESS)
	tripState string
	cell      geo.Cell

	// What the last published frame said about this driver.
	pubLat, pubLng int32
	pubState       int
	dirty          bool

	trail   []ride.LatLng // last positions, oldest first
	history []HistoryEntry
}

func (d *driver) state() int {
	switch {
	case d.trip != "" && d.tripState == ride.StateInProgress:
		return DriverOnTrip
	case d.trip != "":
		return DriverEnRoute
	case d.offerTrip != "":
		return DriverOffered
	case d.available:
		return DriverAvailable
	}
	return DriverUnavailable
}

type trip struct {
	id          string
	slot        int32
	state       string
	version     int64
	driverID    string      // assigned driver, or the one holding the open offer
	pickup      ride.LatLng // the centre of its RiderPointResolution cell (privacy.go)
	dropoff     ride.LatLng // likewise
	pickupCell  geo.Cell
	requestedAt time.Time
	history     []HistoryEntry
	dirty       bool
	// What the last published frame said about this trip.
	pub       [7]int64
	published bool
}

// Aggregator is the map's state. It is safe for concurrent use: the two
// consumers apply events, the ticker publishes frames and viewers inspect,
// all under one mutex, because every operation is short (the longest, a
// tick, walks the online drivers once).
type Aggregator struct {
	cfg Config

	mu      sync.Mutex
	locate  *geo.Cells
	drivers map[string]*driver
	bySlot  []*driver // slot → driver on the map (nil if free)
	freeD   []int32
	trips   map[string]*trip
	tripAt  []*trip
	freeT   []int32
	// Slots freed this tick are reused only after the frame that removes
	// them is out, so a viewer never confuses an old and a new occupant.
	goneD, goneT []int32
	dirtyD       []*driver
	dirtyT       []*trip

	cells     map[geo.Cell]int32
	cellList  []geo.Cell
	newCells  []int32
	pubCounts map[int32][2]int // cell → published [supply, demand]
	cellsFull bool

	stats  window
	ended  map[string]time.Time // terminal trips seen lately, to count each once
	tick   uint64
	lastAt time.Time
}

// New builds an empty aggregate.
func New(cfg Config) (*Aggregator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Aggregator{cfg: cfg, locate: geo.NewCells(cfg.Resolution), drivers: map[string]*driver{}, trips: map[string]*trip{},
		cells: map[geo.Cell]int32{}, pubCounts: map[int32][2]int{}, ended: map[string]time.Time{}}, nil
}

// Apply folds one event into the aggregate. Events it does not draw are
// ignored. It is idempotent: a redelivered ping changes nothing new, and a
// trip update at or below the version already applied is dropped. A payload
// that does not decode is a permanent error (the consumer dead-letters it).
func (a *Aggregator) Apply(e ev.Envelope) error {
	switch e.Type {
	case ev.TypeDriverLocation:
		var p ride.DriverLocation
		if err := e.DecodePayload(&p); err != nil {
			return err
		}
		if p.DriverID == "" {
			return ev.Permanent(fmt.Errorf("livemap: driver.location %s has no driver_id", e.ID))
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.ping(p, e.OccurredAt)
	case ev.TypeDriverAvailability:
		var p ride.DriverAvailability
		if err := e.DecodePayload(&p); err != nil {
			return err
		}
		if p.DriverID == "" {
			return ev.Permanent(fmt.Errorf("livemap: driver.availability %s has no driver_id", e.ID))
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		d := a.driver(p.DriverID)
		if e.OccurredAt.After(d.seen) {
			d.seen = e.OccurredAt
		}
		if d.available != p.Available {
			d.available = p.Available
			a.note(d, e.OccurredAt, map[bool]string{true: "available", false: "unavailable"}[p.Available])
		}
	case ev.TypeTripUpdated:
		var p ride.TripUpdated
		if err := e.DecodePayload(&p); err != nil {
			return err
		}
		if p.Trip.TripID == "" {
			return ev.Permanent(fmt.Errorf("livemap: trip.updated %s has no trip_id", e.ID))
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.tripUpdated(p)
	default:
		return ev.Permanent(fmt.Errorf("livemap: unknown event type %q", e.Type))
	}
	return nil
}

// SeedAvailable marks drivers available before their events are read: the
// map is rebuilt from the last minutes of driver.events, and a driver's
// availability was said once, possibly long before.
func (a *Aggregator) SeedAvailable(ids map[string]bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, on := range ids {
		if on {
			a.driver(id).available = true
		}
	}
}

func (a *Aggregator) driver(id string) *driver {
	d := a.drivers[id]
	if d == nil {
		d = &driver{id: id, slot: -1, pubState: -1}
		a.drivers[id] = d
	}
	return d
}

func (a *Aggregator) markDriver(d *driver) {
	if !d.dirty && d.slot >= 0 {
		d.dirty = true
		a.dirtyD = append(a.dirtyD, d)
	}
}

func (a *Aggregator) markTrip(t *trip) {
	if !t.dirty {
		t.dirty = true
		a.dirtyT = append(a.dirtyT, t)
	}
}

// note records a state change of a driver for its details.
func (a *Aggregator) note(d *driver, at time.Time, what string) {
	d.history = appendCapped(d.history, HistoryEntry{At: ev.FormatTime(at), What: what}, a.cfg.History)
	a.markDriver(d)
}

func appendCapped[T any](s []T, v T, n int) []T {
	if len(s) >= n {
		copy(s, s[1:])
		s = s[:len(s)-1]
	}
	return append(s, v)
}

func (a *Aggregator) ping(p ride.DriverLocation, at time.Time) {
	d := a.driver(p.DriverID)
	if at.Before(d.lastPing) {
		return // an older ping arriving late (or a replay) must not move the driver back
	}
	if d.hasPos && at.Equal(d.lastPing) && d.lat == p.Lat && d.lng == p.Lng {
		return // a redelivered ping
	}
	moved := !d.hasPos || d.lat != p.Lat || d.lng != p.Lng
	d.hasPos, d.lat, d.lng, d.lastPing, d.speed = true, p.Lat, p.Lng, at, p.SpeedMPS
	if at.After(d.seen) {
		d.seen = at
	}
	if moved {
		d.cell = a.locate.Cell(geo.LatLng{Lat: p.Lat, Lng: p.Lng}, d.cell)
		d.trail = appendCapped(d.trail, ride.LatLng{Lat: p.Lat, Lng: p.Lng}, a.cfg.History)
	}
	a.markDriver(d)
}

func (a *Aggregator) tripUpdated(p ride.TripUpdated) {
	tr := p.Trip
	if p.EndedOffer != nil && p.EndedOffer.DriverID != "" {
		if d := a.drivers[p.EndedOffer.DriverID]; d != nil && d.offerTrip == tr.TripID {
			d.offerTrip = ""
			a.note(d, tr.UpdatedAt, "offer for "+tr.TripID+" ended ("+p.Cause+")")
		}
	}
	if ride.Terminal(tr.State) {
		a.endTrip(tr, p.Cause)
		return
	}
	if _, drawn := tripCodes[tr.State]; !drawn {
		return // a state this map does not know: newer than this code
	}
	t := a.trips[tr.TripID]
	if t != nil && tr.Version <= t.version {
		return // a redelivery or a stale update
	}
	if t == nil {
		t = &trip{id: tr.TripID, slot: a.takeTripSlot()}
		a.trips[tr.TripID] = t
		a.tripAt[t.slot] = t
	}
	first := t.state == ""
	if first || tr.State != t.state {
		what := tr.State
		if p.Cause != "" {
			what += " (" + p.Cause + ")"
		}
		t.history = appendCapped(t.history, HistoryEntry{At: ev.FormatTime(tr.UpdatedAt), What: what}, a.cfg.History)
	}
	if tr.State == ride.StateOffered && tr.Offer != nil && len(tr.Offered) == 1 && !tr.RequestedAt.IsZero() {
		// The first offer of a trip: the request→offer latency.
		a.stats.offer(tr.UpdatedAt, tr.UpdatedAt.Sub(tr.RequestedAt))
	}
	if tr.State == ride.StateAccepted && t.state != ride.StateAccepted {
		a.stats.match(tr.UpdatedAt)
	}
	t.state, t.version = tr.State, tr.Version
	if first { // a trip's points never change; snapping them is a cgo call each (privacy.go)
		t.pickup, t.dropoff = riderPoint(tr.Pickup), riderPoint(tr.Dropoff)
		t.pickupCell = geo.CellOf(geo.LatLng{Lat: t.pickup.Lat, Lng: t.pickup.Lng}, a.cfg.Resolution)
	}
	t.requestedAt = tr.RequestedAt
	switch {
	case tr.State == ride.StateOffered && tr.Offer != nil:
		t.driverID = tr.Offer.DriverID
		d := a.driver(tr.Offer.DriverID)
		if d.offerTrip != tr.TripID {
			d.offerTrip = tr.TripID
			a.note(d, tr.UpdatedAt, "offered "+tr.TripID)
		}
	case tr.DriverID != "" && (tr.State == ride.StateAccepted || tr.State == ride.StateArrived || tr.State == ride.StateInProgress):
		t.driverID = tr.DriverID
		d := a.driver(tr.DriverID)
		if d.offerTrip == tr.TripID {
			d.offerTrip = ""
		}
		if d.trip != tr.TripID || d.tripState != tr.State {
			d.trip, d.tripState = tr.TripID, tr.State
			a.note(d, tr.UpdatedAt, tr.State+" "+tr.TripID)
		}
	default:
		t.driverID = ""
	}
	a.markTrip(t)
}

func (a *Aggregator) endTrip(tr ride.Trip, cause string) {
	if tr.DriverID != "" {
		if d := a.drivers[tr.DriverID]; d != nil && d.trip == tr.TripID {
			d.trip, d.tripState = "", ""
			a.note(d, tr.UpdatedAt, tr.State+" "+tr.TripID)
		}
	}
	if _, seen := a.ended[tr.TripID]; !seen {
		a.ended[tr.TripID] = tr.UpdatedAt
		a.stats.end(tr.UpdatedAt, tr.State)
	}
	t := a.trips[tr.TripID]
	if t == nil {
		return
	}
	if t.driverID != "" {
		if d := a.drivers[t.driverID]; d != nil && d.offerTrip == tr.TripID {
			d.offerTrip = ""
			a.markDriver(d)
		}
	}
	delete(a.trips, tr.TripID)
	a.tripAt[t.slot] = nil
	if t.published {
		a.goneT = append(a.goneT, t.slot)
	} else {
		a.freeT = append(a.freeT, t.slot)
	}
	t.slot = -1
}

func (a *Aggregator) takeTripSlot() int32 {
	if n := len(a.freeT); n > 0 {
		s := a.freeT[n-1]
		a.freeT = a.freeT[:n-1]
		return s
	}
	a.tripAt = append(a.tripAt, nil)
	return int32(len(a.tripAt) - 1)
}

func (a *Aggregator) takeDriverSlot() int32 {
	if n := len(a.freeD); n > 0 {
		s := a.freeD[n-1]
		a.freeD = a.freeD[:n-1]
		return s
	}
	a.bySlot = append(a.bySlot, nil)
	return int32(len(a.bySlot) - 1)
}

// cellIndex numbers a cell for the wire; -1 once MaxCells are known.
func (a *Aggregator) cellIndex(c geo.Cell) int32 {
	if i, ok := a.cells[c]; ok {
		return i
	}
	if len(a.cellList) >= a.cfg.MaxCells {
		a.cellsFull = true
		return -1
	}
	i := int32(len(a.cellList))
	a.cells[c] = i
	a.cellList = append(a.cellList, c)
	a.newCells = append(a.newCells, i)
	return i
}

// e5 is a coordinate in the wire's unit: 1e-5 degrees, about a metre.
func e5(v float64) int32 { return int32(math.Round(v * 1e5)) }

// online says whether a driver belongs on the map at now.
func (a *Aggregator) online(d *driver, now time.Time) bool {
	return d.hasPos && now.Sub(d.lastPing) <= a.cfg.StaleAfter
}

// sweep puts newly online drivers on the map and takes stale ones off, and
// forgets drivers with nothing left to show.
func (a *Aggregator) sweep(now time.Time) {
	for id, d := range a.drivers {
		on := a.online(d, now)
		switch {
		case on && d.slot < 0:
			d.slot = a.takeDriverSlot()
			a.bySlot[d.slot] = d
			d.pubState = -1
			a.markDriver(d)
		case !on && d.slot >= 0:
			a.bySlot[d.slot] = nil
			a.goneD = append(a.goneD, d.slot)
			d.slot, d.dirty = -1, false
		}
		if !on && d.trip == "" && d.offerTrip == "" && now.Sub(d.seen) > 10*a.cfg.StaleAfter {
			// Long gone with nothing open: forget it, so drivers that come
			// and go do not grow memory. Its availability is history too.
			delete(a.drivers, id)
		}
	}
	for id, at := range a.ended {
		if now.Sub(at) > 2*a.cfg.Window {
			delete(a.ended, id)
		}
	}
}

// Stats are the live figures of the side panel.
type Stats struct {
	DriversOnline  int            `json:"drivers_online"`
	Available      int            `json:"drivers_available"`
	OpenRequests   int            `json:"open_requests"`
	Active         map[string]int `json:"active"`
	EndedLastMin   map[string]int `json:"ended_1m"`
	MatchesLastMin int            `json:"matches_1m"`
	OfferP50Ms     float64        `json:"offer_p50_ms"`
	OfferP99Ms     float64        `json:"offer_p99_ms"`
	OfferSamples   int            `json:"offer_samples"`
}

// window keeps the events of the last minute that the figures need.
type window struct {
	offers  []sample // request→offer latencies, by time of the offer
	matches []time.Time
	ends    []endSample
}

type sample struct {
	at time.Time
	d  time.Duration
}

type endSample struct {
	at    time.Time
	state string
}

func (w *window) offer(at time.Time, d time.Duration) { w.offers = append(w.offers, sample{at, d}) }
func (w *window) match(at time.Time)                  { w.matches = append(w.matches, at) }
func (w *window) end(at time.Time, state string)      { w.ends = append(w.ends, endSample{at, state}) }

// prune drops what is older than span before now. Events arrive nearly in
// time order, so dropping from the front while old is enough; a straggler
// ages out on a later tick.
func (w *window) prune(now time.Time, span time.Duration) {
	cut := now.Add(-span)
	w.offers = dropOld(w.offers, func(s sample) bool { return s.at.Before(cut) })
	w.matches = dropOld(w.matches, func(t time.Time) bool { return t.Before(cut) })
	w.ends = dropOld(w.ends, func(s endSample) bool { return s.at.Before(cut) })
}

func dropOld[T any](s []T, old func(T) bool) []T {
	i := 0
	for i < len(s) && old(s[i]) {
		i++
	}
	if i == 0 {
		return s
	}
	return append(s[:0], s[i:]...)
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	i = min(max(i, 0), len(sorted)-1)
	return math.Round(float64(sorted[i])/1e4) / 100 // ms with two decimals
}

func (a *Aggregator) figures(now time.Time) Stats {
	a.stats.prune(now, a.cfg.Window)
	s := Stats{Active: map[string]int{}, EndedLastMin: map[string]int{}, MatchesLastMin: len(a.stats.matches)}
	for _, d := range a.bySlot {
		if d == nil {
			continue
		}
		s.DriversOnline++
		if d.state() == DriverAvailable {
			s.Available++
		}
	}
	for _, t := range a.trips {
		s.Active[t.state]++
		if t.state == ride.StateRequested || t.state == ride.StateOffered {
			s.OpenRequests++
		}
	}
	for _, e := range a.stats.ends {
		s.EndedLastMin[e.state]++
	}
	ds := make([]time.Duration, len(a.stats.offers))
	for i, o := range a.stats.offers {
		ds[i] = o.d
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	s.OfferSamples = len(ds)
	s.OfferP50Ms, s.OfferP99Ms = percentile(ds, 0.50), percentile(ds, 0.99)
	return s
}
