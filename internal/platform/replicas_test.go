package platform

import (
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestTwoGatewayReplicas: the rider on one gateway, the driver on another,
// every service on one broker and one Redis. Pushes reach whichever replica
// holds the socket, and a rider who drops and reconnects to the other
// replica with after_seq misses nothing.
func TestTwoGatewayReplicas(t *testing.T) {
	a := startPlatform(t, nil, Gateway, Dispatcher, Tripstate)
	b := startOn(t, a.cfg, a.brokers, Gateway)

	driver, rider, tripID := acceptedRide(t, b, a)
	rider.await("driver.location", 10*time.Second, isType("driver.location"))
	var lastSeq int64
	for _, m := range rider.messages() {
		lastSeq = max(lastSeq, num(m, "seq"))
	}
	rider.c.Close(websocket.StatusNormalClosure, "switching networks")

	driver.mustAck("arr", map[string]any{"type": "trip.arrive", "trip_id": tripID})
	driver.await("ARRIVED", 10*time.Second, tripState("ARRIVED"))
	back := b.connect("rider", "r-1", fmt.Sprintf("after_seq=%d", lastSeq))
	back.await("ARRIVED", 10*time.Second, tripState("ARRIVED"))
	for _, step := range []struct{ cmd, state string }{{"trip.start", "IN_PROGRESS"}, {"trip.complete", "COMPLETED"}} {
		driver.mustAck(step.cmd, map[string]any{"type": step.cmd, "trip_id": tripID})
		back.await(step.state, 10*time.Second, tripState(step.state))
	}

	driver.await("COMPLETED", 10*time.Second, tripState("COMPLETED"))

	// Old socket then new socket: one unbroken stream.
	all := append(rider.messages(), back.messages()...)
	var seqs []int64
	var states []string
	for _, m := range all {
		if m["type"] == "ack" || m["type"] == "error" {
			continue
		}
		seqs = append(seqs, num(m, "seq"))
		if m["type"] == "trip" {
			states = append(states, m["state"].(string))
		}
	}
	for i := range seqs {
		if seqs[i] != int64(i+1) {
			t.Fatalf("rider's seqs across both replicas: %v", seqs)
		}
	}
	if fmt.Sprint(states) != "[REQUESTED OFFERED ACCEPTED ARRIVED IN_PROGRESS COMPLETED]" {
		t.Fatalf("rider's trip states across both replicas: %v", states)
	}
	checkSeq(t, driver)
	checkStates(t, "driver", tripPushes(driver, tripID), []string{"OFFERED", "ACCEPTED", "ARRIVED", "IN_PROGRESS", "COMPLETED"}, 2)
}
