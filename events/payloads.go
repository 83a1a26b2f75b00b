package events

import (
	"encoding/json"
	"time"
)

// Event types, grouped by the topic that carries them.
const (
	// On TopicDriverEvents.
	TypeDriverLocation     = "driver.location"
	TypeDriverAvailability = "driver.availability"

	// On TopicTripCommands, from phones through the gateway. They are named
	// after the WebSocket command that caused them.
	TypeRideRequest  = "ride.request"
	TypeOfferAccept  = "offer.accept"
	TypeOfferDecline = "offer.decline"
	TypeTripArrive   = "trip.arrive"
	TypeTripStart    = "trip.start"
	TypeTripComplete = "trip.complete"
	TypeTripCancel   = "trip.cancel"

	// On TopicTripCommands, from the dispatcher.
	TypeDispatchOffer     = "dispatch.offer"
	TypeDispatchExpire    = "dispatch.expire"
	TypeDispatchNoDrivers = "dispatch.no_drivers"

	// On TopicTripCommands, from tripstate itself: the backstop that ends a
	// search the dispatcher never ended.
	TypeTripDeadline = "trip.deadline"

	// On TopicTripEvents.
	TypeTripUpdated = "trip.updated"

	// On TopicUserPushes.
	TypePush = "push"

	// On TopicDeadLetters.
	TypeDeadLetter = "dead.letter"
)

// TopicTypes says which event types each topic carries; the AsyncAPI document
// is checked against it.
var TopicTypes = map[string][]string{
	TopicDriverEvents: {TypeDriverLocation, TypeDriverAvailability},
	TopicTripCommands: {TypeRideRequest, TypeOfferAccept, TypeOfferDecline, TypeTripArrive, TypeTripStart,
		TypeTripComplete, TypeTripCancel, TypeDispatchOffer, TypeDispatchExpire, TypeDispatchNoDrivers, TypeTripDeadline},
	TopicTripEvents:  {TypeTripUpdated},
	TopicUserPushes:  {TypePush},
	TopicDeadLetters: {TypeDeadLetter},
}

// LatLng is a WGS84 position in degrees.
type LatLng struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

// DriverLocation is one ping. The envelope's OccurredAt is when the gateway
// received it, which is what staleness is judged by: phone clocks drift.
type DriverLocation struct {
	DriverID string   `json:"driver_id"`
	Lat      float64  `json:"lat"`
	Lng      float64  `json:"lng"`
	Heading  *float64 `json:"heading,omitempty"`
	SpeedMPS *float64 `json:"speed_mps,omitempty"`
	// At is the phone's own timestamp, if it sent one.
	At string `json:"at,omitempty"`
}

// DriverAvailability is a driver going on or off duty.
type DriverAvailability struct {
	DriverID  string `json:"driver_id"`
	Available bool   `json:"available"`
}

// TripCommand is every event on TopicTripCommands; which fields are set
// depends on the type (see asyncapi.yaml).
type TripCommand struct {
	TripID string `json:"trip_id"`
	// UserID and Role identify who sent a phone command; empty for the
	// dispatcher's commands.
	UserID string `json:"user_id,omitempty"`
	Role   string `json:"role,omitempty"`

	Pickup  *LatLng `json:"pickup,omitempty"`  // ride.request
	Dropoff *LatLng `json:"dropoff,omitempty"` // ride.request

	OfferID         string    `json:"offer_id,omitempty"`          // offer.*, dispatch.offer, dispatch.expire
	DriverID        string    `json:"driver_id,omitempty"`         // dispatch.offer
	PickupDistanceM float64   `json:"pickup_distance_m,omitempty"` // dispatch.offer
	ExpiresAt       time.Time `json:"expires_at,omitzero"`         // dispatch.offer
	Reason          string    `json:"reason,omitempty"`            // trip.cancel
}

// Trip states.
const (
	StateRequested  = "REQUESTED"
	StateOffered    = "OFFERED"
	StateAccepted   = "ACCEPTED"
	StateArrived    = "ARRIVED"
	StateInProgress = "IN_PROGRESS"
	StateCompleted  = "COMPLETED"
	StateCancelled  = "CANCELLED"
	StateNoDrivers  = "NO_DRIVERS"
)

// Terminal reports whether no transition leaves state s.
func Terminal(s string) bool {
	return s == StateCompleted || s == StateCancelled || s == StateNoDrivers
}

// Offer is a ride offered to one driver.
type Offer struct {
	OfferID         string    `json:"offer_id"`
	DriverID        string    `json:"driver_id"`
	PickupDistanceM float64   `json:"pickup_distance_m"`
	ExpiresAt       time.Time `json:"expires_at"`
}

// Trip is the full record of one trip as tripstate stores it.
type Trip struct {
	TripID   string `json:"trip_id"`
	State    string `json:"state"`
	Version  int64  `json:"version"`
	RiderID  string `json:"rider_id"`
	DriverID string `json:"driver_id,omitempty"`
	Pickup   LatLng `json:"pickup"`
	Dropoff  LatLng `json:"dropoff"`
	Reason   string `json:"reason,omitempty"`
	// Offer is the open offer while the trip is OFFERED.
	Offer *Offer `json:"offer,omitempty"`
	// Offered lists every driver this trip has been offered to, in order: a
	// driver is never offered the same trip twice, and only they may answer.
	Offered     []string  `json:"offered,omitempty"`
	RequestedAt time.Time `json:"requested_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// TripUpdated is one applied transition.
type TripUpdated struct {
	Trip Trip `json:"trip"`
	// Cause is the command type that caused the transition.
	Cause string `json:"cause"`
	// EndedOffer is the offer this transition closed (declined, expired,
	// accepted or voided), so the dispatcher can free or retire that driver.
	EndedOffer *Offer `json:"ended_offer,omitempty"`
}

// Push is one message for one user's phone. Message is the JSON object the
// phone receives, without its seq: the gateway numbers pushes per user.
type Push struct {
	UserID  string          `json:"user_id"`
	Message json.RawMessage `json:"message"`
}

// DeadLetter records an event a consumer gave up on, with where it came from.
type DeadLetter struct {
	Reason    string `json:"reason"`
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	Value     string `json:"value"`
}
