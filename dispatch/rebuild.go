package dispatch

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	ev "github.com/hexride/hexride/events"
)

// What the dispatcher holds in memory, and what each part is rebuilt from on
// start and on takeover (docs/architecture.md, "State is rebuilt"):
//
//   - availability: the durable record the gateway keeps of every change a
//     driver acknowledged (AvailabilityRecord), then the log;
//   - positions: driver.events from StaleAfter ago (an older position is
//     never offered anyway), read in no consumer group (SupplyFrom);
//   - open searches and their offers: trip.events of the partitions this
//     replica owns, from the first event of the oldest search still open
//     there, which is as far as any owner commits (Floor);
//   - drivers on a trip or holding an offer from another replica (or from
//     before a restart): not held here at all. The shared reservation
//     refuses them at offer time, and it checks tripstate's own claim on
//     the driver, which is stored atomically with the acceptance.
//
// Until the supply has caught up with the log, and for a trip partition
// until it has been read back, nothing is decided from the partial view.

// AvailabilityRecord is the durable record of which drivers said they are
// available (package supply).
type AvailabilityRecord interface {
	Available(ctx context.Context) (map[string]bool, error)
}

var rebuildSeconds = promauto.NewGauge(prometheus.GaugeOpts{
	Name: "hexride_dispatch_supply_rebuild_seconds",
	Help: "How long the last rebuild of the supply view took, from start to caught up with driver.events.",
})

// PrepareSupply starts a rebuild of the supply view: it is marked not
// rebuilt (nothing is decided until it has caught up again) and loaded with
// the durable availability record. The router runs it, retried, before it
// reads driver.events from SupplyFrom.
func (d *Dispatcher) PrepareSupply(ctx context.Context) error {
	d.mu.Lock()
	d.rebuilt = false
	d.rebuildStarted = time.Now()
	d.mu.Unlock()
	if d.Supply == nil {
		return nil
	}
	avail, err := d.Supply.Available(ctx)
	if err != nil {
		return fmt.Errorf("read the drivers' availability: %w", err)
	}
	d.mu.Lock()
	for id := range avail {
		d.available[id] = true
	}
	d.mu.Unlock()
	return nil
}

// SupplyFrom is the time of the oldest ping the supply view is rebuilt from:
// an older position is never offered anyway. Broker timestamps are
// wall-clock; a second's margin covers the gateway stamping an event a
// little before the broker does.
func (d *Dispatcher) SupplyFrom() time.Time { return time.Now().Add(-d.cfg.StaleAfter - time.Second) }

// HandleDriverEvents applies a batch of driver events in order. It decides
// nothing: offers wait for the clock (Tick) or a trip event.
func (d *Dispatcher) HandleDriverEvents(ctx context.Context, es []ev.Envelope) ([]ev.Outgoing, error) {
	for _, e := range es {
		if err := d.HandleDriverEvent(ctx, e); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// SupplyCaughtUp marks the supply view rebuilt: from now on it is current.
func (d *Dispatcher) SupplyCaughtUp() {
	d.mu.Lock()
	took := time.Since(d.rebuildStarted)
	d.rebuilt = true
	drivers, available := d.index.Len(), len(d.available)
	d.mu.Unlock()
	rebuildSeconds.Set(took.Seconds())
	d.log.Info("supply view rebuilt", "replica", d.cfg.ReplicaID, "drivers", drivers, "available", available, "took", took)
}

// Ready reports whether the supply view has been rebuilt, so the replica
// decides from what is true now.
func (d *Dispatcher) Ready() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.rebuilt {
		return fmt.Errorf("dispatcher %s: rebuilding its supply view from driver.events", d.cfg.ReplicaID)
	}
	return nil
}

// Assigned is told, at every rebalance of the trips group, the partitions this
// replica now owns. Searches and busy drivers of any other partition belong
// to another replica now; every owned partition is read back from its
// floor, so its searches are rebuilt before they are decided on again.
func (d *Dispatcher) Assigned(partitions []int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	owned := map[int]bool{}
	for _, p := range partitions {
		owned[p] = true
	}
	var dropped int
	for id, s := range d.searches {
		if s.partition < 0 || owned[s.partition] {
			continue
		}
		if s.offer != nil && d.offered[s.offer.DriverID] == id {
			delete(d.offered, s.offer.DriverID)
			d.syncLocked(s.offer.DriverID)
		}
		delete(d.searches, id)
		dropped++
	}
	for driver, b := range d.busy {
		if b.partition >= 0 && !owned[b.partition] {
			delete(d.busy, driver)
			d.syncLocked(driver)
		}
	}
	d.replaying = owned // each is read back from its floor
	d.log.Info("trip partitions assigned", "replica", d.cfg.ReplicaID, "partitions", partitions, "searches_dropped", dropped)
}

// CaughtUp marks a trip partition read back: its searches are current.
func (d *Dispatcher) CaughtUp(partition int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.replaying, partition)
}

// Floor is how far the trips group may commit on a partition: no further
// than the first event of its oldest open search.
func (d *Dispatcher) Floor(partition int, next int64) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.searches {
		if s.partition == partition && s.from >= 0 {
			next = min(next, s.from)
		}
	}
	return next
}

// decidesLocked says whether s may be decided on now. d.mu is held.
func (d *Dispatcher) decidesLocked(s *search) bool {
	return d.rebuilt && !d.replaying[s.partition]
}
