// Package events is how hexride's services talk: the envelope every event
// travels in, the topics and event types, and a router that runs handlers.
// A handler takes an event and returns the events it decides; the router
// reads them from a Subscriber, retries, dead-letters, publishes through a
// Publisher and only then commits. Kafka is one implementation of both
// (package events/kafka); the simulation has an in-memory one. No business
// rule lives here.
package events

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/encoding/json"
)

// Topics. Every topic the platform uses is named here and nowhere else.
const (
	// TopicDriverEvents carries driver pings and availability, keyed by driver
	// id so one driver's events stay in order.
	TopicDriverEvents = "driver.events"
	// TopicTripCommands carries every request to change a trip (from phones
	// via the gateway, and from the dispatcher), keyed by trip id so one trip's
	// commands are applied in order by one tripstate consumer.
	TopicTripCommands = "trip.commands"
	// TopicTripEvents carries every applied trip transition, keyed by trip id.
	TopicTripEvents = "trip.events"
	// TopicUserPushes carries messages for phones, keyed by user id so one
	// user's pushes keep their order.
	TopicUserPushes = "user.pushes"
	// TopicDeadLetters receives events a consumer could not decode or apply.
	TopicDeadLetters = "dead.letters"
)

// Topics lists every topic, for creating them at start-up.
var Topics = []string{TopicDriverEvents, TopicTripCommands, TopicTripEvents, TopicUserPushes, TopicDeadLetters}

// SchemaVersion is the only envelope schema version this code reads. An event
// with a newer version is dead-lettered rather than half understood.
const SchemaVersion = 1

// TimeFormat is RFC 3339 in UTC with exactly three fraction digits, as the
// public contract requires.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime renders t in TimeFormat.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// Envelope wraps every event on every topic.
type Envelope struct {
	// ID is unique per event and stable across redelivery and resend: consumers
	// de-duplicate on it because kafka-go has no idempotent producer.
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Version    int             `json:"v"`
	OccurredAt time.Time       `json:"at"`
	Key        string          `json:"key"`
	Payload    json.RawMessage `json:"payload"`
	// Source is where the router read the event from; nil for an event
	// that was not read from the log (a test, the simulation).
	Source *Position `json:"-"`
}

// New builds an envelope with a fresh random id.
func New(typ, key string, at time.Time, payload any) (Envelope, error) {
	return NewWithID(NewID(), typ, key, at, payload)
}

// NewWithID builds an envelope with a caller-chosen id, for events whose id
// must be the same every time they are produced (resends, re-emits).
func NewWithID(id, typ, key string, at time.Time, payload any) (Envelope, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return Envelope{}, fmt.Errorf("encode %s payload: %w", typ, err)
	}
	return Envelope{ID: id, Type: typ, Version: SchemaVersion, OccurredAt: at.UTC(), Key: key, Payload: b}, nil
}

// NewID returns a random 128-bit id in hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// ErrPermanent marks an error that no retry can fix (undecodable bytes, an
// unknown type, a newer schema). The consumer dead-letters the event and
// moves on instead of retrying it forever.
var ErrPermanent = errors.New("permanent")

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrPermanent, err)
}

// Decode parses an envelope from a Kafka message value. Errors are permanent.
// The json package here is segmentio/encoding's, a drop-in for encoding/json:
// every ping is decoded by three consumer groups, and it decodes one in a
// fifth of the time (BenchmarkDecodeLocation, docs/loadtest.md).
func Decode(b []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return Envelope{}, Permanent(fmt.Errorf("decode envelope: %w", err))
	}
	if err := validate(e); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// validate checks what every envelope must have; errors are permanent.
func validate(e Envelope) error {
	switch {
	case e.ID == "":
		return Permanent(errors.New("decode envelope: missing id"))
	case e.Type == "":
		return Permanent(errors.New("decode envelope: missing type"))
	case e.Version < 1:
		return Permanent(fmt.Errorf("decode envelope: bad schema version %d", e.Version))
	case e.Version > SchemaVersion:
		return Permanent(fmt.Errorf("decode envelope: schema version %d is newer than %d", e.Version, SchemaVersion))
	}
	return nil
}

// Decoded is one event of a record: its envelope, or why it does not
// decode, and its own bytes.
type Decoded struct {
	Envelope Envelope
	Err      error
	Raw      []byte
}

// DecodeRecord reads a Kafka record's value: one envelope, or a JSON array
// of envelopes (driver.events batches pings, see Producer). Each event
// decodes or fails on its own; the error is for a value that is neither,
// and is permanent.
func DecodeRecord(b []byte) ([]Decoded, error) {
	v := bytes.TrimLeft(b, " \t\r\n")
	if len(v) == 0 || v[0] != '[' {
		e, err := Decode(b)
		return []Decoded{{Envelope: e, Err: err, Raw: b}}, nil
	}
	// One pass for a batch whose events all decode, as the producer's do;
	// only a batch with a bad event is split to tell it apart.
	var es []Envelope
	if json.Unmarshal(v, &es) == nil && len(es) > 0 {
		out := make([]Decoded, len(es))
		ok := true
		for i, e := range es {
			out[i] = Decoded{Envelope: e}
			ok = ok && validate(e) == nil
		}
		if ok {
			return out, nil
		}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(v, &raws); err != nil {
		return nil, Permanent(fmt.Errorf("decode batch of envelopes: %w", err))
	}
	if len(raws) == 0 {
		return nil, Permanent(errors.New("decode batch of envelopes: empty"))
	}
	out := make([]Decoded, len(raws))
	for i, r := range raws {
		e, err := Decode(r)
		out[i] = Decoded{Envelope: e, Err: err, Raw: r}
	}
	return out, nil
}

// DecodePayload unmarshals the payload into v; errors are permanent.
func (e Envelope) DecodePayload(v any) error {
	if err := json.Unmarshal(e.Payload, v); err != nil {
		return Permanent(fmt.Errorf("decode %s payload of event %s: %w", e.Type, e.ID, err))
	}
	return nil
}
