// Package protocol is the public WebSocket contract (v1) between a phone (or
// the live map in a browser) and the gateway, written once for the gateway,
// the load tester and client libraries. asyncapi.yaml is the contract's
// document: the channel ws (address /v1/ws) describes the rules in prose and
// components/messages each message; gateway/asyncapi_test.go holds the names
// and shapes here to it.
//
// What a client needs, in the order it meets it:
//
//   - Connecting: GET /v1/ws with a JWT whose role is RoleDriver, RoleRider
//     or RoleViewer; ?after_seq=N resumes after the last push seen.
//   - Sending: a Frame of one of the Msg* client types (ClientMessageTypes
//     says which role may send which), one JSON object per text frame of at
//     most MaxFrameBytes; ids at most MaxIDBytes, free text at most
//     MaxTextBytes. Frame.Validate checks a frame as the gateway will.
//   - Answers: every command with an id gets one Answer, an ack (MsgAck) or
//     an error (MsgError) with one of the Code* codes. Answers carry no seq.
//   - Pushes: OfferMessage, TripMessage, DriverLocationMessage and
//     ResyncMessage (the Push* types), each with a per-user seq.
//     ServerFrame reads any server frame in one pass.
//   - Closes: the Close* status codes and what a client does on each.
//   - Values: LatLng positions, times in TimeFormat, trip State* values.
//
// The live map's frames (map.snapshot, map.delta, map.detail) are named
// here; their shapes are package livemap's.
//
// Besides the socket, Push is the user.pushes record that carries a message
// to a user's gateway.
package protocol

import (
	"encoding/json"
	"time"

	"github.com/hexride/hexride/ride"
)

// Server-to-phone message types that travel as pushes (they carry a seq).
const (
	PushOffer          = "offer"
	PushTrip           = "trip"
	PushDriverLocation = "driver.location"
	PushResync         = "resync"
)

// PushTypes lists every push message type.
var PushTypes = []string{PushOffer, PushTrip, PushDriverLocation, PushResync}

// OfferMessage is the `offer` push to the driver offered a ride.
type OfferMessage struct {
	Type            string      `json:"type"`
	OfferID         string      `json:"offer_id"`
	TripID          string      `json:"trip_id"`
	Pickup          ride.LatLng `json:"pickup"`
	Dropoff         ride.LatLng `json:"dropoff"`
	PickupDistanceM float64     `json:"pickup_distance_m"`
	ExpiresAt       string      `json:"expires_at"`
}

// TripMessage is the `trip` push, and the trip inside `resync`.
type TripMessage struct {
	Type     string      `json:"type,omitempty"`
	TripID   string      `json:"trip_id"`
	State    string      `json:"state"`
	Version  int64       `json:"version"`
	RiderID  string      `json:"rider_id"`
	DriverID string      `json:"driver_id,omitempty"`
	Pickup   ride.LatLng `json:"pickup"`
	Dropoff  ride.LatLng `json:"dropoff"`
	Reason   string      `json:"reason,omitempty"`
	// UpdatedAt is an optional addition to the v1 contract.
	UpdatedAt string `json:"updated_at,omitempty"`
}

// NewTripMessage renders t as the public trip shape. The driver is named only
// once assigned (ACCEPTED onwards), as protocol.md says.
func NewTripMessage(t ride.Trip) TripMessage {
	m := TripMessage{Type: PushTrip, TripID: t.TripID, State: t.State, Version: t.Version, RiderID: t.RiderID,
		DriverID: t.DriverID, Pickup: t.Pickup, Dropoff: t.Dropoff, Reason: t.Reason}
	if !t.UpdatedAt.IsZero() {
		m.UpdatedAt = formatTime(t.UpdatedAt)
	}
	return m
}

// DriverLocationMessage is the `driver.location` push to a rider.
type DriverLocationMessage struct {
	Type    string   `json:"type"`
	TripID  string   `json:"trip_id"`
	Lat     float64  `json:"lat"`
	Lng     float64  `json:"lng"`
	Heading *float64 `json:"heading"`
	At      string   `json:"at"`
}

// ResyncMessage tells a resuming phone its gap could not be filled; Trip is
// its current trip or nil.
type ResyncMessage struct {
	Type string       `json:"type"`
	Trip *TripMessage `json:"trip"`
}

// NewOfferMessage renders an offer for the driver.
func NewOfferMessage(t ride.Trip, o ride.Offer) OfferMessage {
	return OfferMessage{Type: PushOffer, OfferID: o.OfferID, TripID: t.TripID, Pickup: t.Pickup, Dropoff: t.Dropoff,
		PickupDistanceM: o.PickupDistanceM, ExpiresAt: formatTime(o.ExpiresAt)}
}

// Push is one message for one user's phone. Message is the JSON object the
// phone receives, without its seq: the gateway numbers pushes per user.
// The user is the pair (Role, UserID): a driver whose sub is a rider's id
// is another user and never gets that rider's pushes. The record's Kafka
// key is ride.UserKey(Role, UserID) (see NewPush).
type Push struct {
	UserID string `json:"user_id"`
	// Role is "rider" or "driver". Records written before it existed have
	// none; the gateway infers it from the message (PushRole).
	Role    string          `json:"role,omitempty"`
	Message json.RawMessage `json:"message"`
	// RequestedAt is, on a trip's first offer, when its ride was requested (in
	// TimeFormat): the gateway measures request→offer from it to the
	// offer's write on the socket (hexride_request_to_offer_seconds).
	RequestedAt string `json:"requested_at,omitempty"`
}

// Key is the user key the push is for, its Kafka key.
func (p Push) Key() string { return ride.UserKey(PushRole(p), p.UserID) }

// PushRole is the push's Role or, for a record from before pushes carried
// one, the role its message implies: an offer goes to a driver, a
// driver.location to a rider, and a trip to its driver if it names another
// rider (else to its rider).
func PushRole(p Push) string {
	if p.Role != "" {
		return p.Role
	}
	var m struct {
		Type    string `json:"type"`
		RiderID string `json:"rider_id"`
	}
	_ = json.Unmarshal(p.Message, &m)
	switch {
	case m.Type == PushOffer:
		return ride.RoleDriver
	case m.Type == PushTrip && m.RiderID != "" && m.RiderID != p.UserID:
		return ride.RoleDriver
	}
	return ride.RoleRider
}

// TimeFormat is how the contract writes a time: RFC 3339 in UTC with
// milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }
