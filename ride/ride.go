// Package ride is the domain's vocabulary, shared by every service and free
// of any dependency: a trip and its states, an offer, the commands that move
// a trip, and what a driver says about itself (a ping, its availability).
// The rules that move a trip live in package trip; these are only the words.
package ride

import "time"

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

// Roles of the phones' users. A token's role and its sub together are one
// user: a rider and a driver may carry the same sub and are still two
// people, with two push streams, two sets of sockets and two budgets.
const (
	RoleRider  = "rider"
	RoleDriver = "driver"
)

// UserKey names one user, the pair (role, id), in the one form every
// service keys by: "rider:alice", "driver:d-42". Push streams and their
// seqs, presence, sockets, command memory, rate limits and the
// user.pushes partition key all use it; never the id alone, which a token
// of the other role may also carry.
func UserKey(role, id string) string { return role + ":" + id }

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
