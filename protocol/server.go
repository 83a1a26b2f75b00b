package protocol

import (
	"fmt"

	"github.com/hexride/hexride/ride"
)

// Answers to commands: not pushes, so they carry no seq (asyncapi.yaml,
// components/messages/serverAck and serverError).
const (
	MsgAck   = "ack"
	MsgError = "error"
)

// Live-map frames to viewers: numbered by tick, not by seq (they are a view,
// not a log, and are never replayed). Their shapes are package livemap's
// (asyncapi.yaml, components/messages/serverMap*).
const (
	MsgMapSnapshot = "map.snapshot"
	MsgMapDelta    = "map.delta"
	MsgMapDetail   = "map.detail"
)

// ServerMessageTypes lists every message the gateway sends to clients.
var ServerMessageTypes = append([]string{MsgAck, MsgError, MsgMapSnapshot, MsgMapDelta, MsgMapDetail}, PushTypes...)

// Error codes of an `error` answer (asyncapi.yaml,
// components/schemas/ErrorCode).
const (
	// CodeBadRequest: malformed JSON (a key given twice or a string that is
	// not valid UTF-8 included), unknown type, missing or out-of-range field.
	CodeBadRequest = "bad_request"
	// CodeForbidden: the role may not send this, or the trip is not the
	// sender's (checked before existence).
	CodeForbidden = "forbidden"
	// CodeNotFound: no such trip.
	CodeNotFound = "not_found"
	// CodeConflict: an illegal or stale transition, or an id reused for a
	// different command.
	CodeConflict = "conflict"
	// CodeRateLimited: too many frames; slow down.
	CodeRateLimited = "rate_limited"
	// CodeTooLarge: a frame over MaxFrameBytes (in practice the socket is
	// closed with CloseMessageTooBig).
	CodeTooLarge = "too_large"
	// CodeUnavailable: the event log or state store could not take it; safe
	// to retry with the same id.
	CodeUnavailable = "unavailable"
)

// Answer is the one answer to a command that carried an id: an `ack` (the
// command is durably in the event log; TripID names the new trip of a
// ride.request) or an `error` (Code and Message). ID is the command's; an
// error to a frame whose id could not be read has none.
type Answer struct {
	Type    string `json:"type"`
	ID      string `json:"id,omitempty"`
	TripID  string `json:"trip_id,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Error is an `error` answer's code and message, as a Go error.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ServerFrame is any frame the server sends to a phone, read in one pass:
// only the fields of its Type are set. The trip push's fields are those of
// the embedded TripMessage, which an offer shares for trip_id, pickup and
// dropoff; the others are those of OfferMessage, DriverLocationMessage,
// ResyncMessage and Answer. A test holds it to them.
type ServerFrame struct {
	TripMessage
	// Seq numbers pushes per user (asyncapi.yaml, components/schemas/Seq);
	// answers have none. Resume with ?after_seq= the last one seen.
	Seq int64 `json:"seq,omitempty"`

	// offer.
	OfferID         string  `json:"offer_id,omitempty"`
	PickupDistanceM float64 `json:"pickup_distance_m,omitempty"`
	ExpiresAt       string  `json:"expires_at,omitempty"`

	// driver.location.
	Lat     float64  `json:"lat,omitempty"`
	Lng     float64  `json:"lng,omitempty"`
	Heading *float64 `json:"heading,omitempty"`
	At      string   `json:"at,omitempty"`

	// resync: the user's current trip, or nil.
	Trip *TripMessage `json:"trip,omitempty"`

	// ack and error.
	ID      string `json:"id,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// WebSocket close status codes the gateway ends a socket with (asyncapi.yaml,
// channel ws, "Frames", and servers.gateway). They are untyped, to suit any
// WebSocket library.
const (
	// CloseNormal: the client hung up, or a viewer's socket ended.
	CloseNormal = 1000
	// CloseGoingAway: the gateway is shutting down; reconnect (to another
	// gateway) with after_seq.
	CloseGoingAway = 1001
	// ClosePolicyViolation: a flood went on past rate_limited errors.
	ClosePolicyViolation = 1008
	// CloseMessageTooBig: a frame over MaxFrameBytes.
	CloseMessageTooBig = 1009
	// CloseTryAgainLater: too slow to take its pushes, or the gateway could
	// not make them deliverable; reconnect with after_seq.
	CloseTryAgainLater = 1013
	// CloseTokenExpired: the token expired (30 s after exp); reconnect with
	// a fresh token and after_seq.
	CloseTokenExpired = 4001
	// CloseReplaced: the user opened more sockets than allowed (on any
	// gateway); the oldest is closed. Reconnecting would close the newest.
	CloseReplaced = 4008
)

// LatLng is a position as the server writes it: WGS84 degrees,
// {"lat": 37.7749, "lng": -122.4194}.
type LatLng = ride.LatLng

// Trip states: the state of a TripMessage (asyncapi.yaml,
// components/schemas/TripState). COMPLETED, CANCELLED and NO_DRIVERS are
// terminal.
const (
	StateRequested  = ride.StateRequested
	StateOffered    = ride.StateOffered
	StateAccepted   = ride.StateAccepted
	StateArrived    = ride.StateArrived
	StateInProgress = ride.StateInProgress
	StateCompleted  = ride.StateCompleted
	StateCancelled  = ride.StateCancelled
	StateNoDrivers  = ride.StateNoDrivers
)

// Terminal reports whether a trip in state s will change no more.
func Terminal(s string) bool { return ride.Terminal(s) }
