// Package trip owns trip state: the per-trip state machine, its storage in
// Redis, and the service that applies trip commands (from phones and the
// dispatcher) and tells both phones and the rest of the platform what
// changed. It is the single writer of trips.
package trip

import (
	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/ride"
)

// Transitions is the whole state machine: state × command → next state.
// Anything not listed is illegal. A ride.request creates a trip in
// REQUESTED; it is not a transition. docs/trip-states.md is checked against
// this table by a test.
var Transitions = map[string]map[string]string{
	ride.StateRequested: {
		ev.TypeDispatchOffer:     ride.StateOffered,
		ev.TypeTripCancel:        ride.StateCancelled,
		ev.TypeDispatchNoDrivers: ride.StateNoDrivers,
		ev.TypeTripDeadline:      ride.StateNoDrivers,
	},
	ride.StateOffered: {
		ev.TypeOfferAccept:       ride.StateAccepted,
		ev.TypeOfferDecline:      ride.StateRequested,
		ev.TypeDispatchExpire:    ride.StateRequested,
		ev.TypeTripCancel:        ride.StateCancelled,
		ev.TypeDispatchNoDrivers: ride.StateNoDrivers,
		ev.TypeTripDeadline:      ride.StateNoDrivers,
	},
	ride.StateAccepted: {
		ev.TypeTripArrive: ride.StateArrived,
		ev.TypeTripCancel: ride.StateCancelled,
	},
	ride.StateArrived: {
		ev.TypeTripStart:  ride.StateInProgress,
		ev.TypeTripCancel: ride.StateCancelled,
	},
	ride.StateInProgress: {
		ev.TypeTripComplete: ride.StateCompleted,
	},
}

// Next returns the state cmd leads to from state, or false if illegal.
func Next(state, cmd string) (string, bool) {
	next, ok := Transitions[state][cmd]
	return next, ok
}

// Created reports whether a trip may begin (version 1) in state with reason:
// a ride.request creates it REQUESTED, or, when its rider already has an
// active trip, already CANCELLED with ReasonRiderBusy (the gateway acked
// the request, so it must end where the rider sees it).
func Created(state, reason string) bool {
	return state == ride.StateRequested || state == ride.StateCancelled && reason == ReasonRiderBusy
}
