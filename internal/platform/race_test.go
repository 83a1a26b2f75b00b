package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/hexride/hexride/dispatch"
	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/ride"
)

// snapshotScript reads every listed trip in one atomic step, so a check of
// "no driver in two active trips" sees one consistent moment.
var snapshotScript = redis.NewScript(`
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('HGET', k, 'json') or '' end
return out
`)

func TestRaceManyRidersFewDriversTwoReplicasEach(t *testing.T) {
	// Both matching policies must keep the same invariants under the same
	// races: one open offer per driver, no offer to a driver on a trip, no
	// driver offered the same trip twice, every request terminal.
	for _, policy := range []string{dispatch.PolicyGreedy, dispatch.PolicyBatch} {
		t.Run(policy, func(t *testing.T) { raceManyRiders(t, policy) })
	}
}

func raceManyRiders(t *testing.T, policy string) {
	mutate := func(c *Config) {
		c.OfferTimeout, c.SearchDeadline, c.ReplicaID = time.Second, 12*time.Second, "a"
		c.DispatchPolicy, c.BatchWindow = policy, 300*time.Millisecond
	}
	a := startPlatform(t, mutate, Gateway, Dispatcher, Tripstate)
	cfgB := a.cfg
	cfgB.ReplicaID = "b"
	startOn(t, cfgB, a.brokers, Dispatcher, Tripstate)
	rdb := a.run.Redis

	const riders, drivers = 50, 10
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for i := range drivers {
		d := a.connect("driver", fmt.Sprintf("d-%d", i), "")
		d.goOnline(37.7749+float64(i)*0.001, -122.4194)
		wg.Add(1)
		go func() {
			defer wg.Done()
			driveLoop(ctx, d, rand.New(rand.NewPCG(uint64(i), 7)))
		}()
	}
	time.Sleep(500 * time.Millisecond)

	tripIDs := make([]string, riders)
	var mu sync.Mutex
	var rwg sync.WaitGroup
	for i := range riders {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			r := a.connect("rider", fmt.Sprintf("r-%d", i), "")
			id := requestRide(t, r, "req")
			mu.Lock()
			tripIDs[i] = id
			mu.Unlock()
			rng := rand.New(rand.NewPCG(uint64(i), 11))
			if rng.IntN(4) == 0 { // a quarter cancel at a random moment, racing the accept
				time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
				r.send(map[string]any{"type": "trip.cancel", "trip_id": id, "id": "cancel"})
			}
		}()
	}
	rwg.Wait()

	keys := make([]string, riders)
	for i, id := range tripIDs {
		keys[i] = "trip:" + id
	}
	everDriver := map[string]string{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		raw, err := snapshotScript.Run(context.Background(), rdb, keys).StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		active := map[string]string{}
		offers := map[string]string{}
		done := 0
		for _, js := range raw {
			if js == "" {
				continue
			}
			var tr ride.Trip
			if err := json.Unmarshal([]byte(js), &tr); err != nil {
				t.Fatal(err)
			}
			if ride.Terminal(tr.State) {
				done++
			}
			if tr.State == ride.StateOffered && tr.Offer != nil {
				if other, ok := offers[tr.Offer.DriverID]; ok {
					t.Fatalf("driver %s holds two open offers at once: %s and %s", tr.Offer.DriverID, other, tr.TripID)
				}
				offers[tr.Offer.DriverID] = tr.TripID
			}
			if tr.DriverID != "" {
				if prev, ok := everDriver[tr.TripID]; ok && prev != tr.DriverID {
					t.Fatalf("trip %s had driver %s, now %s", tr.TripID, prev, tr.DriverID)
				}
				everDriver[tr.TripID] = tr.DriverID
				if !ride.Terminal(tr.State) {
					if other, busy := active[tr.DriverID]; busy {
						t.Fatalf("driver %s is in two active trips at once: %s and %s", tr.DriverID, other, tr.TripID)
					}
					active[tr.DriverID] = tr.TripID
				}
			}
		}
		for d, offered := range offers {
			if onTrip, busy := active[d]; busy {
				t.Fatalf("driver %s was offered %s while on trip %s", d, offered, onTrip)
			}
		}
		if done == riders {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d trips ended within 60s", done, riders)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	wg.Wait()

	// The whole log agrees: no trip ever names two drivers, every trip's
	// versions are 1, 2, 3... with no gap or repeat, and each ends terminal.
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: a.brokers, Topic: ev.TopicTripEvents, GroupID: "race-check", StartOffset: kafkago.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	drivers4 := map[string]map[string]bool{}
	versions := map[string]int64{}
	final := map[string]string{}
	states := map[string]int{}
	rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for {
		m, err := r.FetchMessage(rctx)
		if err != nil {
			break
		}
		e, err := ev.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		var u ride.TripUpdated
		if err := e.DecodePayload(&u); err != nil {
			t.Fatal(err)
		}
		tr := u.Trip
		if tr.Version <= versions[tr.TripID] {
			continue // a re-sent copy (same id) after a rebalance; already counted
		}
		if tr.Version != versions[tr.TripID]+1 {
			t.Fatalf("trip %s jumped from v%d to v%d", tr.TripID, versions[tr.TripID], tr.Version)
		}
		versions[tr.TripID] = tr.Version
		final[tr.TripID] = tr.State
		if tr.DriverID != "" {
			if drivers4[tr.TripID] == nil {
				drivers4[tr.TripID] = map[string]bool{}
			}
			drivers4[tr.TripID][tr.DriverID] = true
		}
	}
	for _, id := range tripIDs {
		if len(drivers4[id]) > 1 {
			t.Fatalf("trip %s had drivers %v", id, drivers4[id])
		}
		if !ride.Terminal(final[id]) {
			t.Fatalf("trip %s ended the log in %q", id, final[id])
		}
		states[final[id]]++
	}
	t.Logf("50 trips ended: %v", states)
	if states[ride.StateCompleted] == 0 {
		t.Fatal("no trip completed: the drivers never got through")
	}
}

// driveLoop plays a driver: answer offers (accept mostly, decline some,
// sometimes accept twice at once), drive each accepted trip to the end, and
// now and then cancel before pickup.
func driveLoop(ctx context.Context, d *phone, rng *rand.Rand) {
	n := 0
	next := func() string { n++; return fmt.Sprintf("c%d", n) }
	for {
		var m map[string]any
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-d.in:
			if !ok {
				return
			}
			m = msg
		}
		switch {
		case m["type"] == "offer":
			cmd := "offer.accept"
			if rng.IntN(5) == 0 {
				cmd = "offer.decline"
			}
			d.send(map[string]any{"type": cmd, "offer_id": m["offer_id"], "trip_id": m["trip_id"], "id": next()})
			if cmd == "offer.accept" && rng.IntN(3) == 0 { // a duplicate accept racing the first
				d.send(map[string]any{"type": cmd, "offer_id": m["offer_id"], "trip_id": m["trip_id"], "id": next()})
			}
		case m["type"] == "trip" && m["driver_id"] == d.user:
			var cmd string
			switch m["state"] {
			case "ACCEPTED":
				cmd = "trip.arrive"
				if rng.IntN(8) == 0 {
					cmd = "trip.cancel"
				}
			case "ARRIVED":
				cmd = "trip.start"
			case "IN_PROGRESS":
				cmd = "trip.complete"
			}
			if cmd != "" {
				time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
				d.send(map[string]any{"type": cmd, "trip_id": m["trip_id"], "id": next()})
			}
		}
	}
}
