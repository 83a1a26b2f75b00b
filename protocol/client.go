package protocol

import (
	"math"
	"time"

	"github.com/hexride/hexride/ride"
)

// Client-to-server message types: the type of a Frame. In asyncapi.yaml
// they are the messages of channel ws with x-direction: client.
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
	// MsgMapInspect asks the live map for one driver's or trip's details;
	// Frame.Kind is KindDriver or KindTrip, Frame.Slot its slot.
	MsgMapInspect = "map.inspect"
)

// Roles a token's role claim may carry (asyncapi.yaml, servers.gateway).
const (
	RoleDriver = "driver"
	RoleRider  = "rider"
	// RoleViewer is the live map: it receives map.* frames, no pushes, and
	// sends only map.inspect.
	RoleViewer = "viewer"
)

// ClientMessageTypes lists every message a client may send, with the roles
// allowed to send it (asyncapi.yaml, channel ws, "Roles"). Any other type is
// answered bad_request; a type the sender's role may not send, forbidden.
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

// Kinds a map.inspect may name.
const (
	KindDriver = "driver"
	KindTrip   = "trip"
)

// Limits of the contract (asyncapi.yaml, channel ws, "Frames" and "Commands
// and answers", and the maxLength of the client messages' fields).
const (
	// MaxFrameBytes is the largest frame a client may send; a larger one
	// closes the socket with CloseMessageTooBig.
	MaxFrameBytes = 4096
	// MaxIDBytes bounds a command id.
	MaxIDBytes = 64
	// MaxTextBytes bounds the other free-text fields: offer_id, trip_id,
	// reason.
	MaxTextBytes = 256
	// MaxMapSlot bounds a map.inspect slot.
	MaxMapSlot = 1<<31 - 1
)

// Frame is a client frame (asyncapi.yaml, components/messages/client*). Only
// the fields of its Type are set; pointers tell a missing value from a zero
// one. ID is optional: a command with an id gets exactly one Answer naming
// it, and may be resent with the same id until it does.
type Frame struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`

	// location: Lat and Lng required; Heading in [0, 360), SpeedMPS in
	// [0, 100] and At (RFC 3339) optional.
	Lat      *float64 `json:"lat,omitempty"`
	Lng      *float64 `json:"lng,omitempty"`
	Heading  *float64 `json:"heading,omitempty"`
	SpeedMPS *float64 `json:"speed_mps,omitempty"`
	At       string   `json:"at,omitempty"`

	// availability.
	Available *bool `json:"available,omitempty"`

	// ride.request.
	Pickup  *Point `json:"pickup,omitempty"`
	Dropoff *Point `json:"dropoff,omitempty"`

	// offer.accept and offer.decline: OfferID and TripID; trip.*: TripID;
	// trip.cancel: Reason, optional.
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

// NewPoint returns the point at p.
func NewPoint(p LatLng) *Point { return &Point{Lat: &p.Lat, Lng: &p.Lng} }

// LatLng returns the point; call only on a validated frame.
func (p *Point) LatLng() *ride.LatLng { return &ride.LatLng{Lat: *p.Lat, Lng: *p.Lng} }

// Validate checks f as the gateway does once it has read it as JSON: the
// id's length, a known type, and the fields of that type, present and in
// range. It says what is wrong as a bad_request Error, in the words the
// gateway answers with. Who may send f is a separate check
// (ClientMessageTypes).
func (f *Frame) Validate() *Error {
	if len(f.ID) > MaxIDBytes {
		return badRequest("id is longer than %d bytes", MaxIDBytes)
	}
	if f.Type == "" {
		return badRequest("missing type")
	}
	if _, ok := ClientMessageTypes[f.Type]; !ok {
		return badRequest("unknown type %q", truncate(f.Type, 64))
	}
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
		if f.Kind != KindDriver && f.Kind != KindTrip {
			return badRequest("kind must be %q or %q", KindDriver, KindTrip)
		}
		if f.Slot == nil || *f.Slot < 0 || *f.Slot > MaxMapSlot {
			return badRequest("slot must be an integer in [0, %d]", MaxMapSlot)
		}
	}
	return nil
}

func badRequest(format string, args ...any) *Error { return Errorf(CodeBadRequest, format, args...) }

func checkText(name, v string, required bool) *Error {
	if required && v == "" {
		return badRequest("missing %s", name)
	}
	if len(v) > MaxTextBytes {
		return badRequest("%s is longer than %d bytes", name, MaxTextBytes)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func checkLatLng(prefix string, lat, lng float64) *Error {
	if !finite(lat) || lat < -90 || lat > 90 {
		return badRequest("%slat must be in [-90, 90]", prefix)
	}
	if !finite(lng) || lng < -180 || lng > 180 {
		return badRequest("%slng must be in [-180, 180]", prefix)
	}
	return nil
}

// truncate shortens s to n bytes, marked with "…", for quoting a client's
// input in an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
