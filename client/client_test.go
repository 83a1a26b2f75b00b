package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hexride/hexride/client"
	"github.com/hexride/hexride/protocol"
)

// goOnline puts a driver on duty at sf, its location acked (so it is in the
// event log before any request).
func goOnline(t *testing.T, d *phone) {
	t.Helper()
	must[protocol.Answer](t, "availability")(d.c.SetAvailable(ctx(t), true))
	lat, lng := sf.Lat, sf.Lng
	must[protocol.Answer](t, "location")(d.c.Send(ctx(t), protocol.Frame{Type: protocol.MsgLocation, Lat: &lat, Lng: &lng}))
	if err := d.c.Location(ctx(t), lat, lng); err != nil {
		t.Fatal(err)
	}
}

// ride runs one ride from the request to COMPLETED, each step after the
// previous step's trip push, calling between(step) before each driver step.
func ride(t *testing.T, rider, driver *phone, between func(step string)) string {
	t.Helper()
	if between == nil {
		between = func(string) {}
	}
	tripID := must[string](t, "request")(rider.c.RequestRide(ctx(t), pickup, dropoff))
	if tripID == "" {
		t.Fatal("the ride.request ack carries no trip_id")
	}
	offer, _ := driver.await("offer", 0, func(p client.Push) bool { return p.Offer != nil && p.Offer.TripID == tripID })
	between("accept")
	must[protocol.Answer](t, "accept")(driver.c.Accept(ctx(t), tripID, offer.Offer.OfferID))
	driver.awaitTrip(protocol.StateAccepted)
	rider.awaitTrip(protocol.StateAccepted)
	steps := []struct {
		name, state string
		do          func(context.Context, string) (protocol.Answer, error)
	}{
		{"arrive", protocol.StateArrived, driver.c.Arrive},
		{"start", protocol.StateInProgress, driver.c.Start},
		{"complete", protocol.StateCompleted, driver.c.Complete},
	}
	for _, s := range steps {
		between(s.name)
		must[protocol.Answer](t, s.name)(s.do(ctx(t), tripID))
		driver.awaitTrip(s.state)
		rider.awaitTrip(s.state)
	}
	return tripID
}

// checkStates fails unless the trip's pushes name every state in want, in
// that order, each once (states before the first of want are allowed: the
// rider sees REQUESTED and OFFERED too).
func checkStates(t *testing.T, ph *phone, trip string, want []string) {
	t.Helper()
	got := ph.tripStates(trip)
	i := slices.Index(got, want[0])
	if i < 0 || !slices.Equal(got[i:], want) {
		t.Fatalf("%s: trip states %v, want them to end with %v (%s)", ph.name, got, want, ph.summary())
	}
}

var afterAccept = []string{protocol.StateAccepted, protocol.StateArrived, protocol.StateInProgress, protocol.StateCompleted}

// TestWholeRide: a driver goes online, a rider requests, the driver gets
// the offer, accepts, arrives, starts and completes, and both phones see
// every state in order with seqs one by one.
func TestWholeRide(t *testing.T) {
	p := startPlatform(t)
	driver := p.dial(protocol.RoleDriver, "d-1", client.Options{}, nil)
	rider := p.dial(protocol.RoleRider, "r-1", client.Options{}, nil)
	goOnline(t, driver)
	trip := ride(t, rider, driver, nil)
	checkStates(t, rider, trip, append([]string{protocol.StateRequested, protocol.StateOffered}, afterAccept...))
	checkStates(t, driver, trip, afterAccept)
	rider.checkSeqs()
	driver.checkSeqs()
	// A command the trip no longer allows is the contract's error, typed.
	_, err := driver.c.Arrive(ctx(t), trip)
	var e *client.Error
	if !errors.Is(err, client.ErrConflict) || !errors.As(err, &e) || e.Message == "" {
		t.Fatalf("arrive on a completed trip: %v, want a conflict with a message", err)
	}
	if _, err := rider.c.Arrive(ctx(t), trip); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("a rider's arrive: %v, want forbidden", err)
	}
}

// TestResumeAcrossDroppedSockets cuts each phone's socket mid-trip, and
// holds its reconnect back while the other side moves the trip on, so the
// pushes it missed can come only from the resume: both see every state
// once and every seq once, in order.
func TestResumeAcrossDroppedSockets(t *testing.T) {
	p := startPlatform(t)
	riderNet, driverNet := newNetGate(), newNetGate()
	driver := p.dial(protocol.RoleDriver, "d-1", client.Options{HTTPClient: driverNet.client()}, nil)
	rider := p.dial(protocol.RoleRider, "r-1", client.Options{HTTPClient: riderNet.client()}, nil)
	goOnline(t, driver)
	trip := ride(t, rider, driver, func(step string) {
		switch step {
		case "arrive":
			// The rider is away while the driver arrives (and drives: its
			// locations reach the rider as driver.location pushes).
			riderNet.shut()
			rider.c.DropConnection()
			for i := range 5 {
				if err := driver.c.Location(ctx(t), pickup.Lat+float64(i)*1e-4, pickup.Lng); err != nil {
					t.Fatal(err)
				}
			}
			go func() {
				driver.awaitTrip(protocol.StateArrived)
				time.Sleep(300 * time.Millisecond) // let the locations land too
				riderNet.reopen()
			}()
		case "start":
			// The driver is away when it sends start: the command waits
			// for the reconnect, then goes.
			driverNet.shut()
			driver.c.DropConnection()
			time.AfterFunc(200*time.Millisecond, driverNet.reopen)
		case "complete":
			// Both at once.
			rider.c.DropConnection()
			driver.c.DropConnection()
		}
	})
	checkStates(t, rider, trip, append([]string{protocol.StateRequested, protocol.StateOffered}, afterAccept...))
	checkStates(t, driver, trip, afterAccept)
	rider.checkSeqs()
	driver.checkSeqs()
	for _, ph := range []*phone{rider, driver} {
		ph.mu.Lock()
		connects := slices.Clone(ph.connects)
		ph.mu.Unlock()
		if len(connects) < 2 || connects[0] != -1 || slices.Contains(connects[1:], -1) {
			t.Fatalf("%s connected with after_seq %v: want a live first connection and resumes after", ph.name, connects)
		}
	}
	locs := 0
	for _, push := range rider.pushes() {
		if push.DriverLocation != nil {
			locs++
		}
	}
	if locs == 0 {
		t.Fatalf("the rider got no driver.location pushes: %s", rider.summary())
	}
}

// TestCommandResentAcrossReconnectAppliedOnce: the rider's ride.request
// reaches the gateway and is acked, but the connection drops before the
// client reads the ack; the client resends it with the same id after
// reconnecting, gets the same ack (same trip id), and one trip exists.
func TestCommandResentAcrossReconnectAppliedOnce(t *testing.T) {
	p := startPlatform(t)
	g := newNetGate()
	var armed atomic.Bool
	var mu sync.Mutex
	var swallowed []protocol.Answer
	g.onRead = func(_ *spyConn, b []byte) error {
		i := bytes.Index(b, []byte(`{"type":"ack"`))
		if i < 0 || !armed.CompareAndSwap(true, false) {
			return nil
		}
		var a protocol.Answer
		json.NewDecoder(bytes.NewReader(b[i:])).Decode(&a)
		mu.Lock()
		swallowed = append(swallowed, a)
		mu.Unlock()
		return errCut
	}
	rider := p.dial(protocol.RoleRider, "r-1", client.Options{HTTPClient: g.client()}, nil)
	armed.Store(true)
	tripID := must[string](t, "request")(rider.c.RequestRide(ctx(t), pickup, dropoff))
	mu.Lock()
	first := slices.Clone(swallowed)
	mu.Unlock()
	if len(first) != 1 || first[0].TripID == "" {
		t.Fatalf("the first attempt's ack was not cut off: %+v", first)
	}
	if first[0].TripID != tripID {
		t.Fatalf("the resend was answered with trip %q, the first attempt with %q: want the same ack", tripID, first[0].TripID)
	}
	g.mu.Lock()
	conns := len(g.conns)
	g.mu.Unlock()
	if conns != 2 {
		t.Fatalf("%d connections, want 2 (the cut one and the resend's)", conns)
	}
	rider.awaitTrip(protocol.StateRequested)
	// Tripstate applied it once: one trip, and every push names it.
	keys, err := p.run.Redis.Keys(ctx(t), "trip:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "trip:"+tripID {
		t.Fatalf("trips in Redis: %v, want only trip:%s", keys, tripID)
	}
	time.Sleep(500 * time.Millisecond) // a second trip's push would have come by now
	for _, push := range rider.pushes() {
		if push.Trip != nil && push.Trip.TripID != tripID {
			t.Fatalf("a push about another trip: %+v", push.Trip)
		}
		if push.Trip != nil && push.Trip.State == protocol.StateRequested && push.Seq != rider.pushes()[0].Seq {
			t.Fatalf("REQUESTED pushed twice: %s", rider.summary())
		}
	}
	rider.checkSeqs()
}

// TestResync: a phone resuming after pushes the gateway no longer holds gets
// a resync push with its current trip, and the count goes on from it.
func TestResync(t *testing.T) {
	p := startPlatform(t)

	t.Run("RetentionPassed", func(t *testing.T) {
		g := newNetGate()
		rider := p.dial(protocol.RoleRider, "r-1", client.Options{HTTPClient: g.client()}, nil)
		tripID := must[string](t, "request")(rider.c.RequestRide(ctx(t), pickup, dropoff))
		requested := rider.awaitTrip(protocol.StateRequested)
		g.shut()
		rider.c.DropConnection()
		// Meanwhile the same rider, on another phone, cancels the trip,
		// and the push log forgets it (as it does after 1024 pushes or an
		// hour): the first phone's gap cannot be filled.
		other := p.dial(protocol.RoleRider, "r-1", client.Options{}, nil)
		must[protocol.Answer](t, "cancel")(other.c.Cancel(ctx(t), tripID))
		other.awaitTrip(protocol.StateCancelled)
		if err := p.run.Redis.Del(ctx(t), "push-log:rider:r-1").Err(); err != nil {
			t.Fatal(err)
		}
		g.reopen()
		rs, i := rider.await("resync", 0, func(p client.Push) bool { return p.Resync != nil })
		if rs.Seq <= requested.Seq {
			t.Fatalf("resync seq %d, not after the last push delivered (%d)", rs.Seq, requested.Seq)
		}
		if rs.Resync.Trip != nil && rs.Resync.Trip.TripID == tripID && !protocol.Terminal(rs.Resync.Trip.State) {
			t.Fatalf("resync names the cancelled trip as live: %+v", rs.Resync.Trip)
		}
		if got := rider.c.LastSeq(); got != rs.Seq {
			t.Fatalf("LastSeq %d after a resync with seq %d", got, rs.Seq)
		}
		// Pushes go on from the resync's seq.
		next := must[string](t, "second request")(rider.c.RequestRide(ctx(t), pickup, dropoff))
		push, j := rider.await("the second trip", i, func(p client.Push) bool { return p.Trip != nil && p.Trip.TripID == next })
		if j != i+1 || push.Seq != rs.Seq+1 {
			t.Fatalf("after resync #%d came %s: want the next trip push at seq %d", rs.Seq, rider.summary(), rs.Seq+1)
		}
	})

	t.Run("ResumePointAhead", func(t *testing.T) {
		// An app that kept a seq from another platform (or a wiped one)
		// resumes after it: the gateway has never numbered it, so resync,
		// with a lower seq the client takes as the new start.
		rider := p.dial(protocol.RoleRider, "r-2", client.Options{AfterSeq: 1_000_000}, nil)
		rs, _ := rider.await("resync", 0, func(p client.Push) bool { return p.Resync != nil })
		if rs.Resync.Trip != nil {
			t.Fatalf("resync of a rider with no trip names %+v", rs.Resync.Trip)
		}
		tripID := must[string](t, "request")(rider.c.RequestRide(ctx(t), pickup, dropoff))
		push := rider.awaitTrip(protocol.StateRequested)
		if push.Trip.TripID != tripID || push.Seq != rs.Seq+1 {
			t.Fatalf("after resync #%d: %s", rs.Seq, rider.summary())
		}
		if rider.c.LastSeq() != push.Seq {
			t.Fatalf("LastSeq %d, want %d", rider.c.LastSeq(), push.Seq)
		}
	})
}
