package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hexride/hexride/events"
	"github.com/hexride/hexride/livemap"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// normalize turns a YAML or Go value into what encoding/json would decode
// from its JSON.
func normalize(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func jsonType(v any) string {
	switch n := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if n == math.Trunc(n) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// validate checks a JSON value (as encoding/json decodes it into any)
// against a schema, with the JSON Schema keywords this document uses. It
// returns one line per violation.
func (d *apiDoc) validate(t testing.TB, schema any, v any, at string) []string {
	s, err := d.object(schema)
	if err != nil {
		return []string{fmt.Sprintf("%s: schema: %v", at, err)}
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			errs = append(errs, d.validate(t, sub, v, at)...)
		}
	}
	if anyOf, ok := s["anyOf"].([]any); ok {
		okCount := 0
		for _, sub := range anyOf {
			if len(d.validate(t, sub, v, at)) == 0 {
				okCount++
			}
		}
		if okCount == 0 {
			fail("matches none of anyOf")
		}
	}
	if oneOf, ok := s["oneOf"].([]any); ok {
		var okCount int
		var why []string
		for i, sub := range oneOf {
			e := d.validate(t, sub, v, fmt.Sprintf("%s(oneOf %d)", at, i))
			if len(e) == 0 {
				okCount++
			}
			why = append(why, e...)
		}
		if okCount != 1 {
			fail("matches %d of oneOf, want 1: %s", okCount, strings.Join(why, "; "))
		}
	}
	if ty, ok := s["type"]; ok {
		var allowed []string
		switch tv := ty.(type) {
		case string:
			allowed = []string{tv}
		case []any:
			for _, x := range tv {
				if xs, ok := x.(string); ok {
					allowed = append(allowed, xs)
				}
			}
		}
		got := jsonType(v)
		match := slices.Contains(allowed, got) || (got == "integer" && slices.Contains(allowed, "number"))
		if !match {
			fail("is %s %v, want type %v", got, v, allowed)
			return errs
		}
	}
	if c, ok := s["const"]; ok && !reflect.DeepEqual(normalize(t, c), v) {
		fail("is %v, want const %v", v, c)
	}
	if e, ok := s["enum"].([]any); ok {
		found := false
		for _, x := range e {
			if reflect.DeepEqual(normalize(t, x), v) {
				found = true
			}
		}
		if !found {
			fail("%v is not in enum %v", v, e)
		}
	}
	switch x := v.(type) {
	case float64:
		if m, ok := toFloat(s["minimum"]); ok && x < m {
			fail("%v is below minimum %v", x, m)
		}
		if m, ok := toFloat(s["maximum"]); ok && x > m {
			fail("%v is above maximum %v", x, m)
		}
		if m, ok := toFloat(s["exclusiveMinimum"]); ok && x <= m {
			fail("%v is not above exclusiveMinimum %v", x, m)
		}
		if m, ok := toFloat(s["exclusiveMaximum"]); ok && x >= m {
			fail("%v is not below exclusiveMaximum %v", x, m)
		}
	case string:
		// The document counts bytes, as the code does.
		if m, ok := toFloat(s["maxLength"]); ok && float64(len(x)) > m {
			fail("%d bytes, longer than maxLength %v", len(x), m)
		}
		if m, ok := toFloat(s["minLength"]); ok && float64(len(x)) < m {
			fail("%d bytes, shorter than minLength %v", len(x), m)
		}
		if p, ok := s["pattern"].(string); ok {
			re, err := regexp.Compile(p)
			if err != nil {
				fail("bad pattern %q: %v", p, err)
			} else if !re.MatchString(x) {
				fail("%q does not match pattern %q", x, p)
			}
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				fail("%q is not an RFC 3339 date-time", x)
			}
		}
		if !utf8.ValidString(x) {
			fail("not UTF-8")
		}
	case []any:
		if items, ok := s["items"]; ok {
			for i, e := range x {
				errs = append(errs, d.validate(t, items, e, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	case map[string]any:
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, ok := x[r.(string)]; !ok {
					fail("lacks required field %q", r)
				}
			}
		}
		if props, ok := s["properties"].(map[string]any); ok {
			for _, k := range sortedKeys(props) {
				if pv, ok := x[k]; ok {
					errs = append(errs, d.validate(t, props[k], pv, at+"."+k)...)
				}
			}
		}
		if ap, ok := s["additionalProperties"].(bool); ok && !ap {
			props, _ := s["properties"].(map[string]any)
			for k := range x {
				if _, ok := props[k]; !ok {
					fail("has field %q, which the schema does not allow", k)
				}
			}
		}
	}
	return errs
}

// decodeStrict decodes b into v, refusing fields v does not have.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// Every message has an example; it validates against its own schema, and the
// code reads it: DecodeFrame takes client examples, the Go structs take the
// server and Kafka examples with no unknown field.
func TestAsyncAPIExamples(t *testing.T) {
	doc := loadAPIDoc(t)
	payloadOf := map[string]func() any{
		events.TypeDriverLocation:     func() any { return new(ride.DriverLocation) },
		events.TypeDriverAvailability: func() any { return new(ride.DriverAvailability) },
		events.TypeTripUpdated:        func() any { return new(ride.TripUpdated) },
		events.TypePush:               func() any { return new(protocol.Push) },
		events.TypeDeadLetter:         func() any { return new(events.DeadLetter) },
	}
	for _, typ := range events.TopicTypes[events.TopicTripCommands] {
		payloadOf[typ] = func() any { return new(ride.TripCommand) }
	}
	serverGo := map[string]func() any{
		protocol.PushOffer:          func() any { return new(protocol.OfferMessage) },
		protocol.PushTrip:           func() any { return new(protocol.TripMessage) },
		protocol.PushDriverLocation: func() any { return new(protocol.DriverLocationMessage) },
		protocol.PushResync:         func() any { return new(protocol.ResyncMessage) },
		protocol.MsgAck:             func() any { return new(protocol.Answer) },
		protocol.MsgError:           func() any { return new(protocol.Answer) },
		protocol.MsgMapSnapshot:     func() any { return new(livemap.SnapshotMessage) },
		protocol.MsgMapDelta:        func() any { return new(livemap.DeltaMessage) },
		protocol.MsgMapDetail:       func() any { return new(livemap.Detail) },
	}
	for _, c := range doc.channels(t) {
		for _, m := range c.messages {
			t.Run(c.address+" "+m.name, func(t *testing.T) {
				exs, _ := m.obj["examples"].([]any)
				if len(exs) == 0 {
					t.Fatalf("%s: message %q (%s) has no examples", apiDocPath, m.name, m.ref)
				}
				for i, ex := range exs {
					exm, _ := ex.(map[string]any)
					payload, ok := exm["payload"]
					if !ok {
						t.Errorf("%s: example %d of %q has no payload", m.ref, i, m.name)
						continue
					}
					v := normalize(t, payload)
					for _, e := range doc.validate(t, m.obj["payload"], v, "example") {
						t.Errorf("%s: example %d of %q does not match its schema: %s", m.ref, i, m.name, e)
					}
					b, _ := json.Marshal(v)
					switch {
					case c.address == wsAddress && m.direction == "client":
						f, perr := DecodeFrame(b)
						if perr != nil {
							t.Errorf("%s: DecodeFrame refuses example %d of %q: %v\n%s", m.ref, i, m.name, perr, b)
						} else if f.Type != m.name {
							t.Errorf("%s: example %d of %q decodes as type %q", m.ref, i, m.name, f.Type)
						}
					case c.address == wsAddress:
						obj, _ := v.(map[string]any)
						delete(obj, "seq")
						b, _ := json.Marshal(obj)
						if mk, ok := serverGo[m.name]; ok {
							if err := decodeStrict(b, mk()); err != nil {
								t.Errorf("%s: example %d of %q does not fit its Go struct: %v", m.ref, i, m.name, err)
							}
						}
					default:
						e, err := events.Decode(b)
						if err != nil {
							t.Errorf("%s: events.Decode refuses example %d of %q: %v", m.ref, i, m.name, err)
							continue
						}
						if e.Type != m.name {
							t.Errorf("%s: example %d of %q has type %q", m.ref, i, m.name, e.Type)
						}
						if mk, ok := payloadOf[m.name]; ok {
							if err := decodeStrict(e.Payload, mk()); err != nil {
								t.Errorf("%s: the payload of example %d of %q does not fit its Go struct: %v", m.ref, i, m.name, err)
							}
						}
					}
				}
			})
		}
	}
}

// setPath sets (or deletes) the field at path; false if a parent is missing.
func setPath(obj map[string]any, path []string, v any, del bool) bool {
	for _, p := range path[:len(path)-1] {
		next, ok := obj[p].(map[string]any)
		if !ok {
			return false
		}
		obj = next
	}
	if del {
		delete(obj, path[len(path)-1])
	} else {
		obj[path[len(path)-1]] = v
	}
	return true
}

// The document's constraints on client messages are the ones DecodeFrame
// enforces: starting from each client message's example, a value the schema
// allows at a boundary is accepted, and a value it forbids (out of range,
// too long, wrong JSON type, not a time, a missing required field) is
// answered bad_request.
func TestAsyncAPIClientConstraintsMatchDecodeFrame(t *testing.T) {
	doc := loadAPIDoc(t)
	ws := doc.wsChannel(t)
	for _, m := range ws.messages {
		if m.direction != "client" {
			continue
		}
		exs, _ := m.obj["examples"].([]any)
		if len(exs) == 0 {
			t.Errorf("%s: client message %q has no example", m.ref, m.name)
			continue
		}
		base, _ := normalize(t, exs[0].(map[string]any)["payload"]).(map[string]any)
		if base == nil {
			t.Errorf("%s: the example of %q is not an object", m.ref, m.name)
			continue
		}
		type mutation struct {
			desc   string
			path   []string
			value  any
			delete bool
			ok     bool
		}
		var muts []mutation
		payload := doc.mustFlatten(t, m.obj["payload"], m.ref)
		var walk func(schema map[string]any, prefix []string)
		walk = func(schema map[string]any, prefix []string) {
			props := propsOf(schema)
			required := requiredOf(schema)
			for _, name := range sortedKeys(props) {
				path := append(slices.Clone(prefix), name)
				p := strings.Join(path, ".")
				ps := doc.mustFlatten(t, props[name], m.ref+" "+p)
				muts = append(muts, mutation{desc: "without " + p, path: path, delete: true, ok: !required[name]})
				ty, _ := ps["type"].(string)
				switch {
				case ty == "number" || ty == "integer":
					muts = append(muts, mutation{desc: p + " as a string", path: path, value: "1"})
				case ty == "string" || ps["const"] != nil:
					muts = append(muts, mutation{desc: p + " as a number", path: path, value: 5})
				case ty == "boolean":
					muts = append(muts, mutation{desc: p + " as a string", path: path, value: "true"})
				case ty == "object":
					muts = append(muts, mutation{desc: p + " as a string", path: path, value: "x"})
				}
				eps := func(x float64) float64 { return 1e-6 * math.Max(1, math.Abs(x)) }
				if x, ok := toFloat(ps["minimum"]); ok {
					muts = append(muts, mutation{desc: fmt.Sprintf("%s = minimum %v", p, x), path: path, value: x, ok: true},
						mutation{desc: fmt.Sprintf("%s below minimum %v", p, x), path: path, value: x - eps(x)})
				}
				if x, ok := toFloat(ps["maximum"]); ok {
					muts = append(muts, mutation{desc: fmt.Sprintf("%s = maximum %v", p, x), path: path, value: x, ok: true},
						mutation{desc: fmt.Sprintf("%s above maximum %v", p, x), path: path, value: x + eps(x)})
				}
				if x, ok := toFloat(ps["exclusiveMaximum"]); ok {
					muts = append(muts, mutation{desc: fmt.Sprintf("%s just below exclusiveMaximum %v", p, x), path: path, value: x - eps(x), ok: true},
						mutation{desc: fmt.Sprintf("%s = exclusiveMaximum %v", p, x), path: path, value: x})
				}
				if x, ok := toFloat(ps["maxLength"]); ok {
					muts = append(muts, mutation{desc: fmt.Sprintf("%s of maxLength %v bytes", p, x), path: path, value: strings.Repeat("x", int(x)), ok: true},
						mutation{desc: fmt.Sprintf("%s longer than maxLength %v", p, x), path: path, value: strings.Repeat("x", int(x)+1)})
				}
				if x, ok := toFloat(ps["minLength"]); ok && x >= 1 {
					muts = append(muts, mutation{desc: fmt.Sprintf("%s shorter than minLength %v", p, x), path: path, value: strings.Repeat("x", int(x)-1)})
				}
				if ps["format"] == "date-time" {
					muts = append(muts, mutation{desc: p + " not a time", path: path, value: "yesterday"},
						mutation{desc: p + " without a zone", path: path, value: "2026-11-22T21:00:00.120"})
				}
				if propsOf(ps) != nil {
					walk(ps, path)
				}
			}
		}
		walk(payload, nil)

		t.Run(m.name, func(t *testing.T) {
			b, _ := json.Marshal(base)
			if _, perr := DecodeFrame(b); perr != nil {
				t.Fatalf("%s: DecodeFrame refuses the example of %q: %v", m.ref, m.name, perr)
			}
			for _, mu := range muts {
				frame := normalize(t, base).(map[string]any)
				if !setPath(frame, mu.path, mu.value, mu.delete) {
					continue // the example has no object to put it in
				}
				b, _ := json.Marshal(frame)
				_, perr := DecodeFrame(b)
				switch {
				case mu.ok && perr != nil:
					t.Errorf("%q %s: the document allows it but DecodeFrame answers %v\nframe: %s", m.name, mu.desc, perr, b)
				case !mu.ok && perr == nil:
					t.Errorf("%q %s: the document forbids it but DecodeFrame accepts it\nframe: %s", m.name, mu.desc, b)
				case !mu.ok && perr.Code != protocol.CodeBadRequest:
					t.Errorf("%q %s: DecodeFrame answers code %q, want %q", m.name, mu.desc, perr.Code, protocol.CodeBadRequest)
				}
			}
		})
	}
}
