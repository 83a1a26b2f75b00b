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
//     never offered anyway), read in no consumer group (followSupply);
//   - open searches and their offers: trip.events of the partitions this
//     replica owns, from the first event of the oldest search still open
//     there, which is as far as any owner commits (floor);
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

// forget marks the supply view as not rebuilt: until followSupply has caught
// up, nothing is decided.
func (d *Dispatcher) forget() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rebuilt = false
}

// followSupply rebuilds the supply view, then keeps it up to date with
// driver events until ctx ends.
func (d *Dispatcher) followSupply(ctx context.Context, brokers []string, dead *ev.Producer) error {
	started := time.Now()
	if d.Supply != nil {
		var avail map[string]bool
		if err := ev.Retry(ctx, d.log, "read the drivers' availability", func() (err error) {
			avail, err = d.Supply.Available(ctx)
			return err
		}); err != nil {
			return nil // ctx ended
		}
		d.mu.Lock()
		for id := range avail {
			d.available[id] = true
		}
		d.mu.Unlock()
	}
	// Broker timestamps are wall-clock; a second's margin covers the
	// gateway stamping an event a little before the broker does.
	from := time.Now().Add(-d.cfg.StaleAfter - time.Second)
	return ev.Tail(ctx, ev.TailConfig{Brokers: brokers, Topic: ev.TopicDriverEvents, Name: "dispatcher-supply",
		From: from, Bulk: true, DeadLetters: dead, Logger: d.log, CaughtUp: func() { d.caughtUpSupply(started) }},
		d.handleDriverEvents)
}

// handleDriverEvents applies a batch of driver events in order.
func (d *Dispatcher) handleDriverEvents(ctx context.Context, es []ev.Envelope) error {
	for _, e := range es {
		if err := d.HandleDriverEvent(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

func (d *Dispatcher) caughtUpSupply(started time.Time) {
	took := time.Since(started)
	rebuildSeconds.Set(took.Seconds())
	d.mu.Lock()
	d.rebuilt = true
	drivers, available := d.index.Len(), len(d.available)
	d.mu.Unlock()
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

// assign is told, at every rebalance of the trips group, the partitions this
// replica now owns. Searches and busy drivers of any other partition belong
// to another replica now; every owned partition is read back from its
// floor, so its searches are rebuilt before they are decided on again.
func (d *Dispatcher) assign(partitions []int) {
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

// caughtUp marks a trip partition read back: its searches are current.
func (d *Dispatcher) caughtUp(partition int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.replaying, partition)
}

// floor is how far the trips group may commit on a partition: no further
// than the first event of its oldest open search.
func (d *Dispatcher) floor(partition int, next int64) int64 {
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
