package dispatch

import (
	"context"
	"sync"
	"testing"
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/ride"
)

// slowReservations answers Reserve only when told to, and refuses the
// drivers in taken (held by another replica).
type slowReservations struct {
	mu      sync.Mutex
	asked   chan string
	answer  chan struct{}
	taken   map[string]bool
	release []string
}

func (r *slowReservations) Reserve(_ context.Context, driverID, _ string, _ time.Duration) (bool, error) {
	r.asked <- driverID
	<-r.answer
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.taken[driverID], nil
}
func (r *slowReservations) Hold(context.Context, string, string) error { return nil }
func (r *slowReservations) Release(_ context.Context, driverID, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.release = append(r.release, driverID)
	return nil
}

// TestReservationIsAskedOutsideTheLock: while a driver's reservation is a
// round trip away, pings and other trips go on being handled, the chosen
// driver is offered to no other trip meanwhile, and a driver another replica
// holds gives way to the next candidate.
func TestReservationIsAskedOutsideTheLock(t *testing.T) {
	f := newFixture(t)
	res := &slowReservations{asked: make(chan string, 4), answer: make(chan struct{}), taken: map[string]bool{"near": true}}
	f.d.Reservations = res
	f.driver("near", 37.7750, -122.4194, true)
	f.driver("far", 37.7790, -122.4194, true)

	done := make(chan []ev.Outgoing, 1)
	go func() {
		outs, err := f.d.HandleTripEvent(context.Background(), f.env(ev.TypeTripUpdated, "t1", ride.TripUpdated{Trip: requested("t1")}))
		if err != nil {
			t.Error(err)
		}
		done <- outs
	}()
	if got := <-res.asked; got != "near" {
		t.Fatalf("asked to reserve %s first, want near", got)
	}
	// The reservation is pending: the dispatcher's lock must be free.
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		f.driver("other", 37.7800, -122.4194, true)
	}()
	select {
	case <-pinged:
	case <-time.After(5 * time.Second):
		t.Fatal("a ping waited for a reservation's round trip")
	}
	// Another trip meanwhile is not offered the held driver.
	f.d.mu.Lock()
	cands := f.d.candidatesLocked(&search{trip: requested("t2")}, 5)
	f.d.mu.Unlock()
	for _, c := range cands {
		if c.ID == "near" {
			t.Fatal("a driver held for t1 is a candidate for t2")
		}
	}
	res.answer <- struct{}{} // near: taken by another replica
	if got := <-res.asked; got != "far" {
		t.Fatalf("then asked for %s, want far", got)
	}
	res.answer <- struct{}{}
	outs := <-done
	f.must(f.pub.Publish(context.Background(), outs...))
	if cmds := f.pub.take(t); len(cmds) != 1 || cmds[0].DriverID != "far" || cmds[0].TripID != "t1" {
		t.Fatalf("got %+v, want t1 offered to far", cmds)
	}
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if len(f.d.held) != 0 {
		t.Errorf("drivers still held: %v", f.d.held)
	}
}
