package dispatch

import (
	"context"
	"testing"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/ride"
)

// TestTakeoverOfTripPartitions: a replica keeps searches only for the trip
// partitions it owns, commits no further than the first event of its oldest
// open search there, and decides nothing for a partition it is still
// reading back.
func TestTakeoverOfTripPartitions(t *testing.T) {
	f := newFixture(t)
	f.driver("near", 37.7759, -122.4194, true)
	f.d.Assigned([]int{0, 1})
	at := func(p int, off int64, tr ride.Trip) {
		e := f.env(ev.TypeTripUpdated, tr.TripID, ride.TripUpdated{Trip: tr})
		e.Source = &ev.Position{Partition: p, Offset: off}
		f.handle(e)
	}
	// Partition 0 is being read back: its searches are rebuilt, not decided.
	at(0, 7, requested("t0"))
	at(1, 3, requested("t1"))
	f.must(f.d.Tick(context.Background()))
	if got := f.pub.take(t); len(got) != 0 {
		t.Fatalf("decided %v while reading back", got)
	}
	if got, want := f.d.Floor(0, 20), int64(7); got != want {
		t.Errorf("floor of partition 0 = %d, want %d (t0's first event)", got, want)
	}
	if got := f.d.Floor(2, 20); got != 20 {
		t.Errorf("floor of a partition with no search = %d, want 20", got)
	}
	// Caught up: the oldest request (t0) gets the one driver.
	f.d.CaughtUp(0)
	f.d.CaughtUp(1)
	f.must(f.d.Tick(context.Background()))
	if got := f.pub.take(t); len(got) != 1 || got[0].TripID != "t0" || got[0].DriverID != "near" {
		t.Fatalf("after catching up: %+v, want t0 offered to near", got)
	}
	// A rebalance gives partition 0 to another replica: its search and the
	// driver's offer go with it; partition 1 is read back again.
	f.d.Assigned([]int{1})
	f.d.mu.Lock()
	_, kept0 := f.d.searches["t0"]
	_, kept1 := f.d.searches["t1"]
	_, held := f.d.offered["near"]
	f.d.mu.Unlock()
	if kept0 || !kept1 || held {
		t.Errorf("after losing partition 0: t0 kept %v, t1 kept %v, near's offer kept %v", kept0, kept1, held)
	}
	f.must(f.d.Tick(context.Background()))
	if got := f.pub.take(t); len(got) != 0 {
		t.Fatalf("decided %v for a partition being read back", got)
	}
}
