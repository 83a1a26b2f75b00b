package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	fastjson "github.com/segmentio/encoding/json"

	"github.com/hexride/hexride/livemap"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// Client-to-server message types of protocol.md.
const (
	MsgLocation     = "location"
	MsgAvailability = "availability"
	MsgRideRequest  = "ride.request"
	MsgOfferAccept  = "offer.accept"
	MsgOfferDecline = "offer.decline"
	MsgTripArrive   = "trip.arrive"
	MsgTripStart    = "trip.start"
	MsgTripComplete = "trip.complete"
	MsgTripCancel   = "trip.cancel"
	// MsgMapInspect asks the live map for one driver's or trip's details.
	MsgMapInspect = "map.inspect"
)

// Live-map messages to viewers: numbered by tick, not by seq (they are a
// view, not a log, and are never replayed).
const (
	MsgMapSnapshot = livemap.MsgSnapshot
	MsgMapDelta    = livemap.MsgDelta
	MsgMapDetail   = livemap.MsgDetail
)

// Answers: not pushes, so they carry no seq.
const (
	MsgAck   = "ack"
	MsgError = "error"
)

// Roles a token may carry.
const (
	RoleDriver = "driver"
	RoleRider  = "rider"
	RoleViewer = "viewer"
)

// Error codes of protocol.md.
const (
	CodeBadRequest  = "bad_request"
	CodeForbidden   = "forbidden"
	CodeNotFound    = "not_found"
	CodeConflict    = "conflict"
	CodeRateLimited = "rate_limited"
	CodeTooLarge    = "too_large"
	CodeUnavailable = "unavailable"
)

// ClientMessageTypes lists every message a phone may send, with the roles
// allowed to send it.
var ClientMessageTypes = map[string][]string{
	MsgLocation:     {RoleDriver},
	MsgAvailability: {RoleDriver},
	MsgRideRequest:  {RoleRider},
	MsgOfferAccept:  {RoleDriver},
	MsgOfferDecline: {RoleDriver},
	MsgTripArrive:   {RoleDriver},
	MsgTripStart:    {RoleDriver},
	MsgTripComplete: {RoleDriver},
	MsgTripCancel:   {RoleRider, RoleDriver},
	MsgMapInspect:   {RoleViewer},
}

// ServerMessageTypes lists every message the gateway sends to phones.
var ServerMessageTypes = append([]string{MsgAck, MsgError, MsgMapSnapshot, MsgMapDelta, MsgMapDetail}, protocol.PushTypes...)

const (
	// MaxFrameBytes is the largest frame a client may send.
	MaxFrameBytes = 4096
	// MaxIDBytes bounds a command id.
	MaxIDBytes = 64
	// MaxMapSlot bounds a map.inspect slot.
	MaxMapSlot = 1<<31 - 1
	// maxTextBytes bounds free-text fields (ids, reasons).
	maxTextBytes = 256
)

// Frame is a decoded client frame. Only the fields of its Type are set.
type Frame struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`

	Lat      *float64 `json:"lat,omitempty"`
	Lng      *float64 `json:"lng,omitempty"`
	Heading  *float64 `json:"heading,omitempty"`
	SpeedMPS *float64 `json:"speed_mps,omitempty"`
	At       string   `json:"at,omitempty"`

	Available *bool `json:"available,omitempty"`

	Pickup  *Point `json:"pickup,omitempty"`
	Dropoff *Point `json:"dropoff,omitempty"`

	OfferID string `json:"offer_id,omitempty"`
	TripID  string `json:"trip_id,omitempty"`
	Reason  string `json:"reason,omitempty"`

	// map.inspect: what to describe, by its slot in the viewer's frames.
	Kind string `json:"kind,omitempty"`
	Slot *int64 `json:"slot,omitempty"`
}

// Point is a position as a client sends it; pointers tell a missing
// coordinate from a zero one.
type Point struct {
	Lat *float64 `json:"lat"`
	Lng *float64 `json:"lng"`
}

// LatLng returns the point; call only on a validated frame.
func (p *Point) LatLng() *ride.LatLng { return &ride.LatLng{Lat: *p.Lat, Lng: *p.Lng} }

// ProtocolError is an `error` answer.
type ProtocolError struct {
	Code    string
	Message string
}

func (e *ProtocolError) Error() string { return e.Code + ": " + e.Message }

func badRequest(format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

// DecodeFrame parses and validates one client frame. It returns the frame
// (with Type and ID filled in as far as they could be read, so an error can
// name the command) and a ProtocolError for anything malformed, unknown or
// out of range. Role checks are separate (Authorize).
func DecodeFrame(b []byte) (Frame, *ProtocolError) {
	var f Frame
	// Nearly every frame is well formed, and most are pings: segmentio's
	// decoder takes a quarter of encoding/json's time. What it refuses goes
	// through encoding/json, whose errors the answers quote. Where both
	// accept, they agree (FuzzDecodeFrameFastPath).
	if fastjson.Unmarshal(b, &f) != nil {
		f = Frame{}
		if perr := decodeFrameStd(b, &f); perr != nil {
			return f, perr
		}
	}
	if perr, idAtFault := checkStrict(b); perr != nil {
		if idAtFault || len(f.ID) > MaxIDBytes {
			return Frame{}, perr
		}
		return Frame{ID: f.ID}, perr
	}
	if len(f.ID) > MaxIDBytes {
		return Frame{}, badRequest("id is longer than %d bytes", MaxIDBytes)
	}
	if f.Type == "" {
		return f, badRequest("missing type")
	}
	if _, ok := ClientMessageTypes[f.Type]; !ok {
		return f, badRequest("unknown type %q", truncate(f.Type, 64))
	}
	return f, f.validate()
}

// decodeFrameStd decodes b with encoding/json and says what is wrong with
// it in the contract's words. On error, f holds what can be told of the
// frame: its id, if that could be read.
func decodeFrameStd(b []byte, f *Frame) *ProtocolError {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(f); err != nil {
		// Salvage the id for the error answer if the frame is a JSON object
		// whose other fields have the wrong types.
		var idOnly struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(b, &idOnly) == nil && len(idOnly.ID) <= MaxIDBytes {
			*f = Frame{ID: idOnly.ID}
		} else {
			*f = Frame{}
		}
		return badRequest("malformed JSON: %s", jsonProblem(err))
	}
	if len(f.ID) > MaxIDBytes {
		*f = Frame{}
		return badRequest("id is longer than %d bytes", MaxIDBytes)
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		*f = Frame{ID: f.ID}
		return badRequest("one JSON object per frame, nothing after it")
	}
	return nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	default:
		return truncate(err.Error(), 120)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (f *Frame) validate() *ProtocolError {
	switch f.Type {
	case MsgLocation:
		if f.Lat == nil || f.Lng == nil {
			return badRequest("location needs lat and lng")
		}
		if err := checkLatLng("", *f.Lat, *f.Lng); err != nil {
			return err
		}
		if f.Heading != nil && (!finite(*f.Heading) || *f.Heading < 0 || *f.Heading >= 360) {
			return badRequest("heading must be in [0, 360)")
		}
		if f.SpeedMPS != nil && (!finite(*f.SpeedMPS) || *f.SpeedMPS < 0 || *f.SpeedMPS > 100) {
			return badRequest("speed_mps must be in [0, 100]")
		}
		if f.At != "" {
			if _, err := time.Parse(time.RFC3339Nano, f.At); err != nil {
				return badRequest("at must be an RFC 3339 time")
			}
		}
	case MsgAvailability:
		if f.Available == nil {
			return badRequest("availability needs available (true or false)")
		}
	case MsgRideRequest:
		if f.Pickup == nil || f.Dropoff == nil {
			return badRequest("ride.request needs pickup and dropoff")
		}
		for _, pt := range []struct {
			name string
			p    *Point
		}{{"pickup", f.Pickup}, {"dropoff", f.Dropoff}} {
			if pt.p.Lat == nil || pt.p.Lng == nil {
				return badRequest("%s needs lat and lng", pt.name)
			}
			if err := checkLatLng(pt.name+".", *pt.p.Lat, *pt.p.Lng); err != nil {
				return err
			}
		}
	case MsgOfferAccept, MsgOfferDecline:
		if err := checkText("offer_id", f.OfferID, true); err != nil {
			return err
		}
		return checkText("trip_id", f.TripID, true)
	case MsgTripArrive, MsgTripStart, MsgTripComplete:
		return checkText("trip_id", f.TripID, true)
	case MsgTripCancel:
		if err := checkText("trip_id", f.TripID, true); err != nil {
			return err
		}
		return checkText("reason", f.Reason, false)
	case MsgMapInspect:
		if f.Kind != livemap.KindDriver && f.Kind != livemap.KindTrip {
			return badRequest("kind must be %q or %q", livemap.KindDriver, livemap.KindTrip)
		}
		if f.Slot == nil || *f.Slot < 0 || *f.Slot > MaxMapSlot {
			return badRequest("slot must be an integer in [0, %d]", MaxMapSlot)
		}
	}
	return nil
}

func checkText(name, v string, required bool) *ProtocolError {
	if required && v == "" {
		return badRequest("missing %s", name)
	}
	if len(v) > maxTextBytes {
		return badRequest("%s is longer than %d bytes", name, maxTextBytes)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func checkLatLng(prefix string, lat, lng float64) *ProtocolError {
	if !finite(lat) || lat < -90 || lat > 90 {
		return badRequest("%slat must be in [-90, 90]", prefix)
	}
	if !finite(lng) || lng < -180 || lng > 180 {
		return badRequest("%slng must be in [-180, 180]", prefix)
	}
	return nil
}

// Authorize checks that role may send f.
func Authorize(role string, f Frame) *ProtocolError {
	for _, r := range ClientMessageTypes[f.Type] {
		if r == role {
			return nil
		}
	}
	return &ProtocolError{Code: CodeForbidden, Message: fmt.Sprintf("a %s may not send %s", role, f.Type)}
}

// answer is an ack or error frame.
type answer struct {
	Type    string `json:"type"`
	ID      string `json:"id,omitempty"`
	TripID  string `json:"trip_id,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}
