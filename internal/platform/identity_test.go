package platform

import (
	"fmt"
	"testing"
	"time"
)

// TestIdentityIsRoleAndSub: a user is the pair (role, sub). A driver token
// whose sub is a rider's id, and a rider token whose sub is a driver's id,
// are strangers to that rider's and driver's trip: they get none of their
// pushes, cannot resume their streams and may not act on their trip
// (forbidden); and a rider and a driver with the same sub ride and drive at
// once, each with a stream of its own.
func TestIdentityIsRoleAndSub(t *testing.T) {
	e := startPlatform(t, nil, Gateway, Dispatcher, Tripstate)

	driver := e.connect("driver", "d-1", "")
	driver.goOnline(37.7755, -122.4180)
	rider := e.connect("rider", "alice", "")
	// The impostors connect before anything happens, so every push of the
	// trip would have reached them if they shared the victims' streams.
	fakeDriver := e.connect("driver", "alice", "") // a driver token with the rider's id
	fakeRider := e.connect("rider", "d-1", "")     // a rider token with the driver's id

	tripID := requestRide(t, rider, "req")
	offer := driver.await("offer", 15*time.Second, isType("offer"))
	driver.mustAck("acc", map[string]any{"type": "offer.accept", "offer_id": offer["offer_id"], "trip_id": tripID})
	rider.await("ACCEPTED", 10*time.Second, tripState("ACCEPTED"))

	attempts := []struct {
		name string
		p    *phone
		msg  map[string]any
	}{
		{"driver with the rider's sub cancels", fakeDriver, map[string]any{"type": "trip.cancel", "trip_id": tripID}},
		{"driver with the rider's sub arrives", fakeDriver, map[string]any{"type": "trip.arrive", "trip_id": tripID}},
		{"driver with the rider's sub accepts", fakeDriver, map[string]any{"type": "offer.accept", "trip_id": tripID, "offer_id": offer["offer_id"]}},
		{"driver with the rider's sub declines", fakeDriver, map[string]any{"type": "offer.decline", "trip_id": tripID, "offer_id": offer["offer_id"]}},
		{"rider with the driver's sub cancels", fakeRider, map[string]any{"type": "trip.cancel", "trip_id": tripID, "reason": "not mine"}},
	}
	for i, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			ans := a.p.command(fmt.Sprintf("x%d", i), a.msg)
			if ans["type"] != "error" || ans["code"] != "forbidden" {
				t.Fatalf("answer %v, want error forbidden", ans)
			}
		})
	}
	// Resuming "their" stream from the start gives the impostor its own,
	// empty one.
	resumed := e.connect("driver", "alice", "after_seq=0")

	// The trip goes on, untouched, for its real parties.
	for _, step := range []struct{ cmd, state string }{{"trip.arrive", "ARRIVED"}, {"trip.start", "IN_PROGRESS"}, {"trip.complete", "COMPLETED"}} {
		driver.mustAck(step.cmd, map[string]any{"type": step.cmd, "trip_id": tripID})
		rider.await(step.state, 10*time.Second, tripState(step.state))
	}
	received(t, driver, "COMPLETED", tripState("COMPLETED"))
	checkStates(t, "rider", tripPushes(rider, tripID), []string{"REQUESTED", "OFFERED", "ACCEPTED", "ARRIVED", "IN_PROGRESS", "COMPLETED"}, 1)
	checkSeq(t, rider)
	checkSeq(t, driver)

	// A last push to the rider, then a grace for anything misrouted.
	time.Sleep(500 * time.Millisecond)
	for _, p := range []struct {
		who string
		p   *phone
	}{{"driver alice", fakeDriver}, {"rider d-1", fakeRider}, {"driver alice resuming", resumed}} {
		for _, m := range p.p.messages() {
			if m["type"] != "ack" && m["type"] != "error" {
				t.Errorf("%s got a push meant for another user: %v", p.who, m)
			}
		}
	}

	// Rider sam and driver sam: two users. The driver takes the rider's
	// trip (across town, beyond d-1's reach), and each hears its own side
	// of it, numbered in its own stream.
	samDriver := e.connect("driver", "sam", "")
	samDriver.goOnline(37.8310, -122.3500)
	samRider := e.connect("rider", "sam", "")
	a := samRider.mustAck("sam-req", map[string]any{"type": "ride.request",
		"pickup": map[string]any{"lat": 37.8300, "lng": -122.3510}, "dropoff": map[string]any{"lat": 37.8400, "lng": -122.3400}})
	samTrip, _ := a["trip_id"].(string)
	samOffer := samDriver.await("offer", 15*time.Second, isType("offer"))
	if samOffer["trip_id"] != samTrip {
		t.Fatalf("driver sam was offered %v, want rider sam's trip %s", samOffer["trip_id"], samTrip)
	}
	samDriver.mustAck("sam-acc", map[string]any{"type": "offer.accept", "offer_id": samOffer["offer_id"], "trip_id": samTrip})
	samRider.await("ACCEPTED", 10*time.Second, tripState("ACCEPTED"))
	samRider.await("driver.location", 10*time.Second, isType("driver.location"))
	// The rider's command and the driver's, under one id each: two memories.
	samDriver.mustAck("same-id", map[string]any{"type": "trip.arrive", "trip_id": samTrip})
	samRider.await("ARRIVED", 10*time.Second, tripState("ARRIVED"))
	if a := samRider.command("same-id", map[string]any{"type": "trip.cancel", "trip_id": samTrip}); a["type"] != "ack" {
		t.Fatalf("rider sam's cancel: %v, want ack", a)
	}
	cancelled := received(t, samRider, "CANCELLED", tripState("CANCELLED"))
	if cancelled["reason"] != "cancelled_by_rider" {
		t.Fatalf("trip cancelled with reason %v, want cancelled_by_rider", cancelled["reason"])
	}
	received(t, samDriver, "CANCELLED", tripState("CANCELLED"))
	checkStates(t, "rider sam", tripPushes(samRider, samTrip), []string{"REQUESTED", "OFFERED", "ACCEPTED", "ARRIVED", "CANCELLED"}, 1)
	checkStates(t, "driver sam", tripPushes(samDriver, samTrip), []string{"OFFERED", "ACCEPTED", "ARRIVED", "CANCELLED"}, 2)
	checkSeq(t, samRider)
	checkSeq(t, samDriver)
	for _, m := range samDriver.messages() {
		if m["type"] == "driver.location" {
			t.Fatalf("driver sam got the rider's driver.location push: %v", m)
		}
	}
	for _, m := range samRider.messages() {
		if m["type"] == "offer" {
			t.Fatalf("rider sam got the driver's offer: %v", m)
		}
	}
}

// received waits for a message p got, or gets, that matches: unlike await
// it also finds one that arrived while an earlier await was skipping ahead
// (a push can overtake the ack of the command that caused it).
func received(t *testing.T, p *phone, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	waitFor(t, p.user+"'s "+what, 10*time.Second, func() bool {
		for _, m := range p.messages() {
			if match(m) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}
