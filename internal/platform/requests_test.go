package platform

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConcurrentRequestsOfOneRiderAllEnd sends many ride.request frames from
// one rider at once, over several sockets. Every one is answered; every ack
// names a trip that reaches a terminal trip push, so the rider never holds a
// trip id that never ends (the gateway's check cannot see requests still in
// flight, so several are acked and tripstate settles them).
func TestConcurrentRequestsOfOneRiderAllEnd(t *testing.T) {
	e := startPlatform(t, func(c *Config) {
		c.OfferTimeout, c.SearchDeadline = time.Second, 2*time.Second // no drivers: the one real trip ends soon
	})
	const sockets, each = 4, 5
	phones := make([]*phone, sockets)
	for i := range phones {
		phones[i] = e.connect("rider", "r-many", "")
	}
	var wg sync.WaitGroup
	answers := make([][]map[string]any, sockets)
	for i, p := range phones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				p.send(map[string]any{"type": "ride.request", "id": fmt.Sprintf("req-%d-%d", i, j),
					"pickup": map[string]any{"lat": 37.77, "lng": -122.42}, "dropoff": map[string]any{"lat": 37.78, "lng": -122.41}})
			}
		}()
	}
	wg.Wait()
	acked := map[string]string{} // trip id → request id
	for i, p := range phones {
		for j := range each {
			id := fmt.Sprintf("req-%d-%d", i, j)
			a := p.await("answer to "+id, 10*time.Second, answerTo(id))
			answers[i] = append(answers[i], a)
			switch a["type"] {
			case "ack":
				trip, _ := a["trip_id"].(string)
				if trip == "" {
					t.Fatalf("%s: ack without trip_id: %v", id, a)
				}
				acked[trip] = id
			case "error":
				if a["code"] != "conflict" {
					t.Fatalf("%s: error %v, want conflict", id, a)
				}
			}
		}
	}
	if len(acked) == 0 {
		t.Fatal("no request was acked")
	}
	t.Logf("%d of %d requests acked", len(acked), sockets*each)
	// Every socket of the rider gets every push: look at everything the
	// first has received (answers were awaited on it, skipping pushes).
	ended := map[string]string{}
	for deadline := time.Now().Add(20 * time.Second); len(ended) < len(acked) && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, m := range phones[0].messages() {
			if s := m["state"]; m["type"] == "trip" && (s == "CANCELLED" || s == "NO_DRIVERS" || s == "COMPLETED") {
				ended[m["trip_id"].(string)] = s.(string)
			}
		}
	}
	var noDrivers int
	for trip, req := range acked {
		switch ended[trip] {
		case "":
			t.Errorf("%s was acked with trip %s, which never reached a terminal push", req, trip)
		case "NO_DRIVERS":
			noDrivers++
		}
	}
	if noDrivers != 1 {
		t.Errorf("%d trips searched and ended NO_DRIVERS, want exactly 1 (the rest refused as rider_busy): %v", noDrivers, ended)
	}
}
