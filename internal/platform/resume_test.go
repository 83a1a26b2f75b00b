package platform

import (
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestReconnectWithAfterSeqMissesNothing(t *testing.T) {
	e := startPlatform(t, nil)
	driver := e.connect("driver", "d-1", "")
	driver.goOnline(37.7755, -122.4180)
	rider := e.connect("rider", "r-1", "")
	tripID := requestRide(t, rider, "req")
	offered := rider.await("OFFERED", 15*time.Second, tripState("OFFERED"))
	lastSeq := num(offered, "seq")
	rider.c.Close(websocket.StatusNormalClosure, "going into a tunnel")

	offer := driver.await("offer", 10*time.Second, isType("offer"))
	driver.mustAck("acc", map[string]any{"type": "offer.accept", "offer_id": offer["offer_id"], "trip_id": tripID})
	driver.await("ACCEPTED", 10*time.Second, tripState("ACCEPTED"))
	driver.mustAck("arr", map[string]any{"type": "trip.arrive", "trip_id": tripID})
	driver.await("ARRIVED", 10*time.Second, tripState("ARRIVED"))

	back := e.connect("rider", "r-1", fmt.Sprintf("after_seq=%d", lastSeq))
	back.await("ARRIVED (replayed)", 10*time.Second, tripState("ARRIVED"))
	driver.mustAck("start", map[string]any{"type": "trip.start", "trip_id": tripID})
	back.await("IN_PROGRESS (live)", 10*time.Second, tripState("IN_PROGRESS"))

	// The resumed stream continues the old one: seq lastSeq+1, +2, ... with
	// no gap and no repeat, and the trip pushes carry on from OFFERED.
	want := lastSeq + 1
	var states []string
	for _, m := range back.messages() {
		if got := num(m, "seq"); got != want {
			t.Fatalf("resumed push %v has seq %d, want %d", m, got, want)
		}
		want++
		if m["type"] == "trip" {
			states = append(states, m["state"].(string))
		}
	}
	if fmt.Sprint(states) != "[ACCEPTED ARRIVED IN_PROGRESS]" {
		t.Fatalf("resumed trip pushes %v", states)
	}
}

func TestResumeBeyondWhatIsKeptGetsResync(t *testing.T) {
	e := startPlatform(t, nil)
	rider := e.connect("rider", "r-1", "")
	tripID := requestRide(t, rider, "req")
	rider.await("REQUESTED", 10*time.Second, tripState("REQUESTED"))

	back := e.connect("rider", "r-1", "after_seq=999")
	m := back.await("resync", 10*time.Second, isType("resync"))
	trip, _ := m["trip"].(map[string]any)
	if trip == nil || trip["trip_id"] != tripID || num(m, "seq") == 0 {
		t.Fatalf("resync %v, want the current trip %s and a seq", m, tripID)
	}
	// A user with no trip gets resync with a null trip.
	nobody := e.connect("rider", "r-2", "after_seq=5")
	m = nobody.await("resync", 10*time.Second, isType("resync"))
	if v, has := m["trip"]; !has || v != nil {
		t.Fatalf("resync for a user with no trip: %v", m)
	}
}
