// Package dispatch owns matching: it keeps the supply index of available
// drivers from their pings, and for every requested trip offers the ride to
// the nearest eligible driver, one at a time, re-offers on decline or
// timeout, and gives up explicitly (dispatch.no_drivers) at the search
// deadline. It decides; tripstate records. Its only outputs are commands on
// the trip.commands topic.
package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/geo"
	"github.com/hexride/hexride/ride"
)

// Config tunes matching. Zero values take the defaults.
type Config struct {
	// OfferTimeout is how long a driver has to answer an offer (10 s).
	OfferTimeout time.Duration
	// SearchDeadline is how long after the request the search gives up (60 s).
	SearchDeadline time.Duration
	// StaleAfter is how old a driver's last ping may be for the driver to be
	// offered anything (15 s: drivers ping every 1–4 s).
	StaleAfter time.Duration
	// MaxPickupM is the farthest a driver may be from the pickup (5 km).
	MaxPickupM float64
	// RetryEvery is how often waiting searches look again for supply and
	// open offers are checked for expiry (200 ms).
	RetryEvery time.Duration
	// Resolution is the H3 resolution of the supply index.
	Resolution int
	// Policy is how offers are chosen: PolicyGreedy (the default) offers
	// each request its best candidate as soon as it arrives; PolicyBatch
	// collects requests for BatchWindow and solves the assignment that
	// minimises their total pickup time.
	Policy string
	// BatchWindow is how long the batch policy collects requests (2 s).
	BatchWindow time.Duration
	// ETA estimates pickup times; see eta.go.
	ETA ETA
	// NewID makes offer ids (events.NewID); the simulation gives a seeded
	// one, so a day replays bit for bit.
	NewID func() string
	// ReplicaID names this dispatcher among its replicas in its logs.
	// Nothing is kept under it: each replica rebuilds its supply view on
	// every start (see rebuild.go).
	ReplicaID string
}

func (c Config) withDefaults() Config {
	if c.OfferTimeout <= 0 {
		c.OfferTimeout = 10 * time.Second
	}
	if c.SearchDeadline <= 0 {
		c.SearchDeadline = 60 * time.Second
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = 15 * time.Second
	}
	if c.MaxPickupM <= 0 {
		c.MaxPickupM = 5000
	}
	if c.RetryEvery <= 0 {
		c.RetryEvery = 200 * time.Millisecond
	}
	if c.Policy == "" {
		c.Policy = PolicyGreedy
	}
	if c.BatchWindow <= 0 {
		c.BatchWindow = 2 * time.Second
	}
	c.ETA = c.ETA.withDefaults()
	if c.NewID == nil {
		c.NewID = ev.NewID
	}
	return c
}

// Matching policies.
const (
	PolicyGreedy = "greedy"
	PolicyBatch  = "batch"
)

// ValidatePolicy returns a clear error for an unknown policy name.
func ValidatePolicy(name string) error {
	switch name {
	case PolicyGreedy, PolicyBatch:
		return nil
	}
	return fmt.Errorf("unknown dispatch policy %q (want %q or %q)", name, PolicyGreedy, PolicyBatch)
}

// Publisher sends the decisions the offer clock makes (Tick); it returns
// once they are durable. What a trip event decides is returned to the
// router instead.
type Publisher interface {
	Publish(ctx context.Context, outs ...ev.Outgoing) error
}

var (
	offersTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "hexride_dispatch_offers_total", Help: "Offers decided.",
	})
	noDriversTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "hexride_dispatch_no_drivers_total", Help: "Searches that ended without a driver.",
	})
	indexedDrivers = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "hexride_dispatch_indexed_drivers", Help: "Drivers in the supply index.",
	})
)

const (
	// candidates is how many nearest drivers a greedy decision considers, in
	// case the nearest are reserved by another replica.
	candidates = 5
	// batchCandidates is how many nearest drivers each request brings to a
	// batch: enough that two requests wanting the same driver can both be
	// served well, few enough that the assignment stays small.
	batchCandidates = 8
	// reservationSlack keeps an offer's reservation a little past its expiry,
	// until tripstate has applied the expiry.
	reservationSlack = 5 * time.Second
)

// search is one trip looking for a driver.
type search struct {
	trip     ride.Trip
	deadline time.Time
	offer    *ride.Offer // open offer, if any
	// partition and from are where the trip's events are and the offset of
	// the first one this search was built from: the partition's owner does
	// not commit past it (see Floor), so whoever owns the partition next
	// reads the trip's events again and rebuilds the search.
	partition int
	from      int64
	// expireSent and giveUpSent stop the same decision being sent every tick
	// while tripstate has not yet answered it; holding says a driver is
	// held for it while its reservation is asked for.
	expireSent, giveUpSent, holding bool
}

// Dispatcher holds the supply index and the open searches. Every method is
// safe for concurrent use: one mutex guards all state because every decision
// must see the index and the offers consistently; decisions are published
// outside the lock.
type Dispatcher struct {
	cfg Config
	pub Publisher
	log *slog.Logger
	now func() time.Time

	// Reservations, if set, share "this driver is taken" with the other
	// replicas; set it before Run.
	Reservations Reservations

	// Supply, if set, is the durable record of the drivers' availability
	// that the supply view starts from; set it before Run.
	Supply AvailabilityRecord

	mu sync.Mutex
	// index holds every driver's position; only drivers that are available,
	// not busy and not holding an offer are eligible in it (see syncLocked).
	index     *geo.Index
	available map[string]bool
	busy      map[string]tripRef // driver → accepted trip
	offered   map[string]string  // driver → trip with an open offer
	held      map[string]string  // driver → trip it is held for (see hold)
	searches  map[string]*search
	nextBatch time.Time
	cands     []geo.Candidate // scratch for queries, under mu
	// rebuilt says the supply view has caught up with the log; replaying
	// are the trip partitions this replica owns and is still reading back.
	// Nothing is decided before the supply is rebuilt, nor for a trip whose
	// partition is being read back.
	rebuilt        bool
	rebuildStarted time.Time
	replaying      map[int]bool
}

// tripRef is a trip and the partition of its events.
type tripRef struct {
	trip      string
	partition int
}

// New builds a dispatcher. now may be nil (wall clock).
func New(cfg Config, pub Publisher, log *slog.Logger, now func() time.Time) *Dispatcher {
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	cfg = cfg.withDefaults()
	// Fed directly (tests, the simulation), a dispatcher decides at once;
	// Run first rebuilds its view from the log.
	return &Dispatcher{cfg: cfg, pub: pub, log: log, now: now, rebuilt: true,
		index: geo.NewIndex(cfg.Resolution), available: map[string]bool{}, busy: map[string]tripRef{},
		offered: map[string]string{}, held: map[string]string{}, searches: map[string]*search{}, replaying: map[int]bool{}}
}

// GroupTrips is the consumer group that shares trips out among the
// dispatcher's replicas.
const GroupTrips = "dispatcher-trips"

// Run runs the offer clock until ctx ends: expiries, deadlines and the
// searches that wait for supply. Events reach the dispatcher through the
// router: driver.events at HandleDriverEvents (read in no group, from
// SupplyFrom, after PrepareSupply), trip.events at HandleTripEvent (in
// GroupTrips, told of its partitions through Assigned, CaughtUp and Floor);
// the routes are in internal/platform.
func (d *Dispatcher) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.RetryEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := d.Tick(ctx); err != nil && ctx.Err() == nil {
				d.log.Warn("dispatch tick", "err", err)
			}
		}
	}
}

// HandleDriverEvent updates the supply index from a ping or an availability
// change. Staleness is judged by when the gateway received the ping.
func (d *Dispatcher) HandleDriverEvent(_ context.Context, e ev.Envelope) error {
	switch e.Type {
	case ev.TypeDriverLocation:
		var p ride.DriverLocation
		if err := e.DecodePayload(&p); err != nil {
			return err
		}
		d.mu.Lock()
		n := d.index.Len()
		d.index.Set(p.DriverID, geo.LatLng{Lat: p.Lat, Lng: p.Lng}, e.OccurredAt)
		if d.index.Len() != n { // a new driver enters eligible; correct that
			d.syncLocked(p.DriverID)
			indexedDrivers.Set(float64(d.index.Len()))
		}
		d.mu.Unlock()
	case ev.TypeDriverAvailability:
		var a ride.DriverAvailability
		if err := e.DecodePayload(&a); err != nil {
			return err
		}
		d.mu.Lock()
		if a.Available {
			d.available[a.DriverID] = true
		} else {
			delete(d.available, a.DriverID)
		}
		d.syncLocked(a.DriverID)
		d.mu.Unlock()
	default:
		return ev.Permanent(fmt.Errorf("unknown driver event type %q", e.Type))
	}
	return nil
}

// HandleTripEvent follows each trip: a trip in REQUESTED is searched for, an
// accepted driver becomes busy until the trip ends, a closed offer frees its
// driver. It returns the offer (or expiry, or give-up) the trip is due.
func (d *Dispatcher) HandleTripEvent(ctx context.Context, e ev.Envelope) ([]ev.Outgoing, error) {
	if e.Type != ev.TypeTripUpdated {
		return nil, ev.Permanent(fmt.Errorf("unknown trip event type %q", e.Type))
	}
	var u ride.TripUpdated
	if err := e.DecodePayload(&u); err != nil {
		return nil, err
	}
	t := u.Trip
	pos := ev.Position{Partition: -1, Offset: -1} // not read from the log: a test, the simulation
	if e.Source != nil {
		pos = *e.Source
	}
	d.mu.Lock()
	if o := u.EndedOffer; o != nil && d.offered[o.DriverID] == t.TripID {
		delete(d.offered, o.DriverID)
		d.syncLocked(o.DriverID)
	}
	s := d.searches[t.TripID]
	switch {
	case ride.Terminal(t.State):
		delete(d.searches, t.TripID)
		if t.DriverID != "" && d.busy[t.DriverID].trip == t.TripID {
			delete(d.busy, t.DriverID)
			d.syncLocked(t.DriverID)
		}
	case t.DriverID != "": // ACCEPTED, ARRIVED, IN_PROGRESS
		delete(d.searches, t.TripID)
		d.busy[t.DriverID] = tripRef{trip: t.TripID, partition: pos.Partition}
		d.syncLocked(t.DriverID)
	case t.State == ride.StateRequested || t.State == ride.StateOffered:
		if s == nil {
			s = &search{deadline: t.RequestedAt.Add(d.cfg.SearchDeadline), partition: pos.Partition, from: pos.Offset}
			d.searches[t.TripID] = s
		}
		if s.trip.Version > t.Version {
			break // an older copy of this trip; keep what we know
		}
		s.trip = t
		if t.State == ride.StateOffered {
			s.offer = t.Offer
			if t.Offer != nil {
				d.offered[t.Offer.DriverID] = t.TripID
				d.syncLocked(t.Offer.DriverID)
			}
		} else if s.offer != nil && (u.EndedOffer == nil || u.EndedOffer.OfferID == s.offer.OfferID) {
			s.offer, s.expireSent = nil, false
		}
	}
	var outs []ev.Outgoing
	greedy := false
	if s != nil && d.searches[t.TripID] == s && t.State == ride.StateRequested && s.offer == nil && d.decidesLocked(s) {
		outs = d.timersLocked(t.TripID, s)
		greedy = outs == nil && d.cfg.Policy == PolicyGreedy
	}
	d.mu.Unlock()
	if err := d.reserveFor(ctx, u); err != nil {
		d.undo(ctx, outs)
		return nil, err
	}
	if greedy {
		outs = d.offerGreedy(ctx, t.TripID)
	}
	return outs, nil
}

// reserveFor keeps the shared reservations in step with a trip: an accepted
// driver is held until the trip ends; a closed offer frees its driver.
func (d *Dispatcher) reserveFor(ctx context.Context, u ride.TripUpdated) error {
	if d.Reservations == nil {
		return nil
	}
	t := u.Trip
	if o := u.EndedOffer; o != nil && o.DriverID != t.DriverID {
		if err := d.Reservations.Release(ctx, o.DriverID, t.TripID); err != nil {
			return err
		}
	}
	if t.DriverID == "" {
		return nil
	}
	if ride.Terminal(t.State) {
		return d.Reservations.Release(ctx, t.DriverID, t.TripID)
	}
	return d.Reservations.Hold(ctx, t.DriverID, t.TripID)
}

// Tick expires overdue offers, gives up on searches past their deadline,
// and offers waiting searches the current supply: at once under the greedy
// policy, at the end of each window under the batch policy. Searches are
// visited oldest first, so the oldest request gets first pick.
func (d *Dispatcher) Tick(ctx context.Context) error {
	d.mu.Lock()
	now := d.now()
	ids := make([]string, 0, len(d.searches))
	for id, s := range d.searches {
		if s.trip.State != "" && d.decidesLocked(s) {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		if c := d.searches[a].trip.RequestedAt.Compare(d.searches[b].trip.RequestedAt); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var outs []ev.Outgoing
	var waiting []string
	for _, id := range ids {
		s := d.searches[id]
		if o := d.timersLocked(id, s); o != nil {
			outs = append(outs, o...)
			continue
		}
		if d.waitingLocked(id, s) {
			waiting = append(waiting, id)
		}
	}
	var holds []hold
	if d.cfg.Policy == PolicyBatch && !now.Before(d.nextBatch) {
		d.nextBatch = now.Add(d.cfg.BatchWindow)
		holds = d.holdBatchLocked(waiting)
	}
	d.mu.Unlock()
	// Reservations are Redis round trips: asked for outside the lock, the
	// drivers held in memory meanwhile.
	switch d.cfg.Policy {
	case PolicyGreedy:
		for _, id := range waiting {
			outs = append(outs, d.offerGreedy(ctx, id)...)
		}
	case PolicyBatch:
		for _, h := range holds {
			o, _ := d.settle(ctx, h)
			outs = append(outs, o...)
		}
	}
	return d.publish(ctx, outs)
}

// timersLocked returns the give-up or expiry command a search is due, if
// any. d.mu is held.
func (d *Dispatcher) timersLocked(tripID string, s *search) []ev.Outgoing {
	now := d.now()
	switch {
	case !now.Before(s.deadline):
		if s.giveUpSent {
			return nil
		}
		s.giveUpSent = true
		noDriversTotal.Inc()
		return d.command(ev.TypeDispatchNoDrivers, "nodrivers-"+tripID, ride.TripCommand{TripID: tripID})
	case s.offer != nil:
		if s.expireSent || now.Before(s.offer.ExpiresAt) {
			return nil
		}
		s.expireSent = true
		return d.command(ev.TypeDispatchExpire, "expire-"+s.offer.OfferID, ride.TripCommand{TripID: tripID, OfferID: s.offer.OfferID})
	}
	return nil
}

// syncLocked makes the driver eligible in the index exactly when it may be
// offered a ride: available, not on a trip, not holding an offer, not held
// for a search whose reservation is being asked for.
func (d *Dispatcher) syncLocked(id string) {
	d.index.SetEligible(id, d.freeLocked(id) && d.held[id] == "")
}

// freeLocked says whether a driver may be offered a ride, leaving aside a
// hold on it. d.mu is held.
func (d *Dispatcher) freeLocked(id string) bool {
	_, busy := d.busy[id]
	_, offered := d.offered[id]
	return d.available[id] && !busy && !offered
}

func (d *Dispatcher) command(typ, id string, cmd ride.TripCommand) []ev.Outgoing {
	env, err := ev.NewWithID(id, typ, cmd.TripID, d.now(), cmd)
	if err != nil {
		panic(err) // a TripCommand always marshals
	}
	return []ev.Outgoing{{Topic: ev.TopicTripCommands, Env: env}}
}

// publish sends the offer clock's decisions. If they cannot be sent, the
// decisions are undone so the next tick decides again rather than waiting on
// an offer nobody made.
func (d *Dispatcher) publish(ctx context.Context, outs []ev.Outgoing) error {
	if len(outs) == 0 {
		return nil
	}
	err := d.pub.Publish(ctx, outs...)
	if err == nil {
		return nil
	}
	d.undo(ctx, outs)
	return fmt.Errorf("publish dispatch decisions: %w", err)
}

// undo forgets decisions that were not made after all.
func (d *Dispatcher) undo(ctx context.Context, outs []ev.Outgoing) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range outs {
		var cmd ride.TripCommand
		if o.Env.DecodePayload(&cmd) != nil {
			continue
		}
		s := d.searches[cmd.TripID]
		if s == nil {
			continue
		}
		switch o.Env.Type {
		case ev.TypeDispatchOffer:
			if s.offer != nil && s.offer.OfferID == cmd.OfferID {
				s.offer = nil
				delete(d.offered, cmd.DriverID)
				d.syncLocked(cmd.DriverID)
			}
			if d.Reservations != nil {
				if rerr := d.Reservations.Release(context.WithoutCancel(ctx), cmd.DriverID, cmd.TripID); rerr != nil {
					d.log.Warn("release reservation after failed offer", "err", rerr)
				}
			}
		case ev.TypeDispatchExpire:
			s.expireSent = false
		case ev.TypeDispatchNoDrivers:
			s.giveUpSent = false
		}
	}
}
