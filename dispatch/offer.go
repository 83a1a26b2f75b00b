package dispatch

import (
	"context"
	"slices"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/geo"
	"github.com/hexride/hexride/ride"
)

// Choosing a driver and reserving it are apart: the choice is made under
// d.mu, from a consistent view of the index and the offers; the shared
// reservation is a Redis round trip, asked for outside the lock so that
// pings and other trips are not held up behind it. Meanwhile the chosen
// driver is held in memory (out of the index, see syncLocked) and the
// search is marked, so no other decision of this replica takes either.

// hold is a driver chosen for a search, kept from every other search while
// its reservation is asked for.
type hold struct {
	tripID string
	s      *search
	c      geo.Candidate
}

// holdLocked keeps c for the search. d.mu is held.
func (d *Dispatcher) holdLocked(tripID string, s *search, c geo.Candidate) hold {
	s.holding = true
	d.held[c.ID] = tripID
	d.syncLocked(c.ID)
	return hold{tripID: tripID, s: s, c: c}
}

// waitingLocked says whether s waits for a driver and may be offered one
// now. d.mu is held.
func (d *Dispatcher) waitingLocked(tripID string, s *search) bool {
	return d.searches[tripID] == s && s.trip.State == ride.StateRequested && s.offer == nil && !s.giveUpSent &&
		!s.holding && d.decidesLocked(s)
}

// settle asks for h's reservation and, if the search still waits and the
// driver is still free, makes the offer. refused reports that another
// replica holds the driver, so the next candidate may be tried.
func (d *Dispatcher) settle(ctx context.Context, h hold) (outs []ev.Outgoing, refused bool) {
	ok, err := d.reserve(ctx, h.c.ID, h.tripID)
	if err != nil {
		d.log.Warn("reserve driver", "err", err)
	}
	reserved := ok && err == nil
	d.mu.Lock()
	delete(d.held, h.c.ID)
	h.s.holding = false
	s := h.s
	stillWaits := d.searches[h.tripID] == s && s.trip.State == ride.StateRequested && s.offer == nil && !s.giveUpSent
	if reserved && stillWaits && d.freeLocked(h.c.ID) {
		outs = d.offerLocked(h.tripID, s, h.c)
	} else {
		d.syncLocked(h.c.ID)
	}
	d.mu.Unlock()
	if reserved && outs == nil && d.Reservations != nil {
		// The search or the driver moved on while the reservation was asked for.
		if err := d.Reservations.Release(context.WithoutCancel(ctx), h.c.ID, h.tripID); err != nil {
			d.log.Warn("release a reservation not used", "err", err)
		}
	}
	return outs, err == nil && !ok
}

// offerGreedy offers a waiting search its best candidate that can be
// reserved, trying up to `candidates` of them in case the nearest are
// reserved by another replica.
func (d *Dispatcher) offerGreedy(ctx context.Context, tripID string) []ev.Outgoing {
	var tried []string
	for range candidates {
		d.mu.Lock()
		s := d.searches[tripID]
		if s == nil || !d.waitingLocked(tripID, s) {
			d.mu.Unlock()
			return nil
		}
		var best *geo.Candidate
		for _, c := range d.candidatesLocked(s, candidates) {
			if !slices.Contains(tried, c.ID) {
				best = &c
				break
			}
		}
		if best == nil {
			d.mu.Unlock()
			return nil
		}
		h := d.holdLocked(tripID, s, *best)
		d.mu.Unlock()
		outs, refused := d.settle(ctx, h)
		if !refused {
			return outs // an offer, or nothing to do until the next tick
		}
		tried = append(tried, h.c.ID)
	}
	return nil
}

// candidatesLocked returns up to k eligible drivers for a search, best
// pickup ETA first, leaving out every driver already offered this trip.
// The slice is reused by the next call.
func (d *Dispatcher) candidatesLocked(s *search, k int) []geo.Candidate {
	var skip func(string) bool
	if len(s.trip.Offered) > 0 {
		skip = func(id string) bool { return slices.Contains(s.trip.Offered, id) }
	}
	// The ETA is a monotone function of distance (eta.go), so the nearest
	// drivers are also the soonest.
	d.cands = d.index.AppendNearest(d.cands, geo.LatLng{Lat: s.trip.Pickup.Lat, Lng: s.trip.Pickup.Lng}, k,
		d.cfg.MaxPickupM, d.now().Add(-d.cfg.StaleAfter), skip)
	return d.cands
}

// holdBatchLocked assigns drivers to the waiting searches so that the total
// pickup time is least (with as many matched as possible), and holds each
// search's driver; settle then offers it. A search left without one waits
// for the next window. d.mu is held.
func (d *Dispatcher) holdBatchLocked(waiting []string) []hold {
	if len(waiting) == 0 {
		return nil
	}
	col := map[string]int{}
	var drivers []geo.Candidate
	type pair struct {
		col int
		eta float64
	}
	rows := make([][]pair, len(waiting))
	for i, id := range waiting {
		for _, c := range d.candidatesLocked(d.searches[id], batchCandidates) {
			j, ok := col[c.ID]
			if !ok {
				j = len(drivers)
				col[c.ID] = j
				drivers = append(drivers, c)
			}
			rows[i] = append(rows[i], pair{j, d.cfg.ETA.Pickup(c.DistanceM).Seconds()})
		}
	}
	if len(drivers) == 0 {
		return nil
	}
	const infeasible = 1e12
	cost := make([][]float64, len(waiting))
	for i, ps := range rows {
		cost[i] = make([]float64, len(drivers))
		for j := range cost[i] {
			cost[i][j] = infeasible
		}
		for _, p := range ps {
			cost[i][p.col] = p.eta
		}
	}
	var holds []hold
	for i, j := range assign(cost, infeasible) {
		if j < 0 {
			continue
		}
		tripID, c := waiting[i], drivers[j]
		// Each row's distance to its driver is its own, not the driver's
		// distance to whichever request brought it into the batch.
		s := d.searches[tripID]
		c.DistanceM = geo.PlanarDistanceM(geo.LatLng{Lat: s.trip.Pickup.Lat, Lng: s.trip.Pickup.Lng}, c.Pos)
		holds = append(holds, d.holdLocked(tripID, s, c))
	}
	return holds
}

func (d *Dispatcher) reserve(ctx context.Context, driverID, tripID string) (bool, error) {
	if d.Reservations == nil {
		return true, nil
	}
	return d.Reservations.Reserve(ctx, driverID, tripID, d.cfg.OfferTimeout+reservationSlack)
}

// offerLocked records and returns the offer of a trip to a driver.
func (d *Dispatcher) offerLocked(tripID string, s *search, c geo.Candidate) []ev.Outgoing {
	now := d.now()
	offer := &ride.Offer{OfferID: "o-" + d.cfg.NewID()[:16], DriverID: c.ID, PickupDistanceM: c.DistanceM,
		ExpiresAt: now.Add(d.cfg.OfferTimeout)}
	s.offer, s.expireSent = offer, false
	d.offered[c.ID] = tripID
	d.syncLocked(c.ID)
	offersTotal.Inc()
	return d.command(ev.TypeDispatchOffer, "offer-"+offer.OfferID, ride.TripCommand{TripID: tripID, OfferID: offer.OfferID,
		DriverID: c.ID, PickupDistanceM: c.DistanceM, ExpiresAt: offer.ExpiresAt})
}
