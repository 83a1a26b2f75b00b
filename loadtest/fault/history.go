// Package fault runs hexride's services as separate OS processes on a
// development broker and a real redis-server, drives the load tester at
// them while a seeded nemesis kills, pauses and restarts them, and then
// checks the whole history (every topic from offset 0, the final Redis
// state, what every phone saw) independently of the services' own code.
package fault

import (
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/loadtest/sim"
	"github.com/hexride/hexride/ride"
)

// History is everything the checker reads: the event log, the final store
// and the load tester's records. The checker is a pure function of it.
type History struct {
	// TripEvents are the trip.updated events in log order per partition.
	TripEvents []TripEvent
	// LogPushes are the trip pushes tripstate put on user.pushes.
	LogPushes []LogPush
	// DeadLetters are every dead letter, in log order.
	DeadLetters []ev.DeadLetter
	// Undecodable counts records no envelope could be read from.
	Undecodable int
	Store       Store
	Requests    []sim.RequestRecord
	Pushes      []sim.PushRecord
}

// TripEvent is one announced transition.
type TripEvent struct {
	Trip  ride.Trip
	Cause string
}

// LogPush is a trip push as it was produced, before any gateway numbered it.
type LogPush struct {
	User    string
	TripID  string
	State   string
	Version int64
}

// Store is the final Redis state the checker needs.
type Store struct {
	// Trips are trip:{id} hashes: the stored trip (json) and its version
	// field (v), which the apply script compares and sets.
	Trips map[string]StoredTrip
	// Claims are driver:{id}:trip, driver id → the trip id it holds.
	Claims map[string]string
	// Reservations are dispatch-driver:{id}, driver id → reservation.
	Reservations map[string]Reservation
	// RiderTrips are rider:{id}:trip, rider id → trip id.
	RiderTrips map[string]string
	// Searching are the members of trips:searching.
	Searching []string
}

// StoredTrip is one trip hash.
type StoredTrip struct {
	V    int64
	Trip ride.Trip
}

// Reservation is a dispatcher's hold on a driver: with a TTL for an offer,
// without (TTL < 0) for an accepted trip.
type Reservation struct {
	TripID string
	TTL    time.Duration
}
