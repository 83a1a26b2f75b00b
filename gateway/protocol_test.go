package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/coder/websocket"
	fastjson "github.com/segmentio/encoding/json"

	"github.com/hexride/hexride/protocol"
)

func fp(v float64) *float64 { return &v }
func bp(v bool) *bool       { return &v }

// frameString renders a frame for failure messages.
func frameString(f protocol.Frame) string {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Sprintf("%+v", f)
	}
	return string(b)
}

func ip(v int64) *int64 { return &v }

func TestDecodeFrameValid(t *testing.T) {
	id64 := strings.Repeat("i", protocol.MaxIDBytes)
	text256 := strings.Repeat("t", protocol.MaxTextBytes)
	pt := func(lat, lng float64) *protocol.Point { return &protocol.Point{Lat: &lat, Lng: &lng} }
	sf, oak := pt(37.7749, -122.4194), pt(37.8044, -122.2712)
	tests := []struct {
		name  string
		frame string
		want  protocol.Frame
	}{
		{"location minimal", `{"type":"location","lat":37.7749,"lng":-122.4194}`,
			protocol.Frame{Type: protocol.MsgLocation, Lat: fp(37.7749), Lng: fp(-122.4194)}},
		{"location full", `{"type":"location","id":"p1","lat":37.7749,"lng":-122.4194,"heading":90,"speed_mps":8.5,"at":"2026-11-22T21:00:00.120Z"}`,
			protocol.Frame{Type: protocol.MsgLocation, ID: "p1", Lat: fp(37.7749), Lng: fp(-122.4194), Heading: fp(90), SpeedMPS: fp(8.5), At: "2026-11-22T21:00:00.120Z"}},
		{"location at the poles and the antimeridian", `{"type":"location","lat":-90,"lng":180}`,
			protocol.Frame{Type: protocol.MsgLocation, Lat: fp(-90), Lng: fp(180)}},
		{"location lat 90 lng -180", `{"type":"location","lat":90,"lng":-180}`,
			protocol.Frame{Type: protocol.MsgLocation, Lat: fp(90), Lng: fp(-180)}},
		{"location zero everything", `{"type":"location","lat":0,"lng":0,"heading":0,"speed_mps":0}`,
			protocol.Frame{Type: protocol.MsgLocation, Lat: fp(0), Lng: fp(0), Heading: fp(0), SpeedMPS: fp(0)}},
		{"location heading just under 360, speed 100", `{"type":"location","lat":1,"lng":2,"heading":359.999,"speed_mps":100}`,
			protocol.Frame{Type: protocol.MsgLocation, Lat: fp(1), Lng: fp(2), Heading: fp(359.999), SpeedMPS: fp(100)}},
		{"location at with an offset and nanoseconds", `{"type":"location","lat":1,"lng":2,"at":"2026-11-22T21:00:00.123456789+02:00"}`,
			protocol.Frame{Type: protocol.MsgLocation, Lat: fp(1), Lng: fp(2), At: "2026-11-22T21:00:00.123456789+02:00"}},
		{"availability true", `{"type":"availability","id":"1","available":true}`,
			protocol.Frame{Type: protocol.MsgAvailability, ID: "1", Available: bp(true)}},
		{"availability false", `{"type":"availability","available":false}`,
			protocol.Frame{Type: protocol.MsgAvailability, Available: bp(false)}},
		{"ride.request", `{"type":"ride.request","id":"r1","pickup":{"lat":37.7749,"lng":-122.4194},"dropoff":{"lat":37.8044,"lng":-122.2712}}`,
			protocol.Frame{Type: protocol.MsgRideRequest, ID: "r1", Pickup: sf, Dropoff: oak}},
		{"offer.accept", `{"type":"offer.accept","id":"a1","offer_id":"o-1","trip_id":"t-1"}`,
			protocol.Frame{Type: protocol.MsgOfferAccept, ID: "a1", OfferID: "o-1", TripID: "t-1"}},
		{"offer.decline", `{"type":"offer.decline","offer_id":"o-1","trip_id":"t-1"}`,
			protocol.Frame{Type: protocol.MsgOfferDecline, OfferID: "o-1", TripID: "t-1"}},
		{"trip.arrive", `{"type":"trip.arrive","id":"s1","trip_id":"t-1"}`,
			protocol.Frame{Type: protocol.MsgTripArrive, ID: "s1", TripID: "t-1"}},
		{"trip.start", `{"type":"trip.start","trip_id":"t-1"}`,
			protocol.Frame{Type: protocol.MsgTripStart, TripID: "t-1"}},
		{"trip.complete", `{"type":"trip.complete","trip_id":"t-1"}`,
			protocol.Frame{Type: protocol.MsgTripComplete, TripID: "t-1"}},
		{"trip.cancel without reason", `{"type":"trip.cancel","id":"c1","trip_id":"t-1"}`,
			protocol.Frame{Type: protocol.MsgTripCancel, ID: "c1", TripID: "t-1"}},
		{"trip.cancel with reason", `{"type":"trip.cancel","trip_id":"t-1","reason":"changed my mind"}`,
			protocol.Frame{Type: protocol.MsgTripCancel, TripID: "t-1", Reason: "changed my mind"}},
		{"id of exactly 64 bytes", `{"type":"trip.start","id":"` + id64 + `","trip_id":"t-1"}`,
			protocol.Frame{Type: protocol.MsgTripStart, ID: id64, TripID: "t-1"}},
		{"trip_id, offer_id and reason of 256 bytes", `{"type":"offer.accept","offer_id":"` + text256 + `","trip_id":"` + text256 + `"}`,
			protocol.Frame{Type: protocol.MsgOfferAccept, OfferID: text256, TripID: text256}},
		{"cancel reason of 256 bytes", `{"type":"trip.cancel","trip_id":"t-1","reason":"` + text256 + `"}`,
			protocol.Frame{Type: protocol.MsgTripCancel, TripID: "t-1", Reason: text256}},
		{"unknown fields are ignored", `{"type":"trip.start","trip_id":"t-1","colour":"red","extra":{"a":[1,2]}}`,
			protocol.Frame{Type: protocol.MsgTripStart, TripID: "t-1"}},
		{"whitespace around the object", " \n\t{\"type\":\"trip.start\",\"trip_id\":\"t-1\"}\n ",
			protocol.Frame{Type: protocol.MsgTripStart, TripID: "t-1"}},
		{"empty id is no id", `{"type":"trip.start","id":"","trip_id":"t-1"}`,
			protocol.Frame{Type: protocol.MsgTripStart, TripID: "t-1"}},
		{"map.inspect driver", `{"type":"map.inspect","id":"i1","kind":"driver","slot":12}`,
			protocol.Frame{Type: protocol.MsgMapInspect, ID: "i1", Kind: "driver", Slot: ip(12)}},
		{"map.inspect trip at the slot bounds", `{"type":"map.inspect","kind":"trip","slot":2147483647}`,
			protocol.Frame{Type: protocol.MsgMapInspect, Kind: "trip", Slot: ip(protocol.MaxMapSlot)}},
		{"map.inspect slot 0", `{"type":"map.inspect","kind":"trip","slot":0}`,
			protocol.Frame{Type: protocol.MsgMapInspect, Kind: "trip", Slot: ip(0)}},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, perr := DecodeFrame([]byte(tc.frame))
			if perr != nil {
				t.Fatalf("DecodeFrame(%s) = error %v, want a valid %s frame", tc.frame, perr, tc.want.Type)
			}
			if !reflect.DeepEqual(f, tc.want) {
				t.Errorf("DecodeFrame(%s)\n got %s\nwant %s", tc.frame, frameString(f), frameString(tc.want))
			}
		})
		covered[tc.want.Type] = true
	}
	for typ := range protocol.ClientMessageTypes {
		if !covered[typ] {
			t.Errorf("no valid-frame case for client message type %q", typ)
		}
	}
}

func TestDecodeFrameInvalid(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name   string
		frame  string
		wantID string // the id the error answer must carry
	}{
		// Not a JSON object.
		{"empty frame", ``, ""},
		{"whitespace only", "  \n", ""},
		{"garbage", `hello`, ""},
		{"truncated object", `{"type":"location","id":"k1","lat":1`, ""},
		{"array", `[{"type":"trip.start","trip_id":"t-1"}]`, ""},
		{"string", `"trip.start"`, ""},
		{"number", `42`, ""},
		{"null", `null`, ""},
		{"two objects", `{"type":"trip.start","id":"k2","trip_id":"t-1"} {"type":"trip.start","trip_id":"t-2"}`, "k2"},
		{"object then garbage", `{"type":"trip.start","id":"k3","trip_id":"t-1"} x`, "k3"},
		// json.Decoder.More does not see a stray closing bracket after the
		// object; these frames were once accepted.
		{"object then a stray }", `{"type":"trip.start","id":"k4","trip_id":"t-1"}}`, "k4"},
		{"object then a stray ]", `{"type":"trip.start","id":"k5","trip_id":"t-1"}]`, "k5"},

		// type.
		{"missing type", `{"id":"m1","trip_id":"t-1"}`, "m1"},
		{"empty type", `{"type":"","id":"m2"}`, "m2"},
		{"unknown type", `{"type":"teleport","id":"m3"}`, "m3"},
		{"server type sent by a client", `{"type":"ack","id":"m4"}`, "m4"},
		{"push type sent by a client", `{"type":"trip","id":"m5","trip_id":"t-1"}`, "m5"},
		{"type of the wrong JSON type", `{"type":5,"id":"m6"}`, "m6"},
		{"type null", `{"type":null,"id":"m7"}`, "m7"},

		// id.
		{"id over 64 bytes", `{"type":"trip.start","id":"` + long(protocol.MaxIDBytes+1) + `","trip_id":"t-1"}`, ""},
		{"id over 64 bytes in a malformed frame", `{"type":"location","id":"` + long(protocol.MaxIDBytes+1) + `","lat":"x"}`, ""},
		// The "one JSON object per frame" path once echoed the id without
		// the length check every other path makes.
		{"id over 64 bytes in two objects", `{"type":"trip.start","id":"` + long(protocol.MaxIDBytes+1) + `","trip_id":"t-1"} {}`, ""},
		{"id of the wrong JSON type", `{"type":"trip.start","id":7,"trip_id":"t-1"}`, ""},

		// map.inspect.
		{"map.inspect missing kind", `{"type":"map.inspect","id":"v1","slot":1}`, "v1"},
		{"map.inspect unknown kind", `{"type":"map.inspect","id":"v2","kind":"rider","slot":1}`, "v2"},
		{"map.inspect missing slot", `{"type":"map.inspect","id":"v3","kind":"driver"}`, "v3"},
		{"map.inspect negative slot", `{"type":"map.inspect","id":"v4","kind":"driver","slot":-1}`, "v4"},
		{"map.inspect slot too large", `{"type":"map.inspect","id":"v5","kind":"driver","slot":2147483648}`, "v5"},
		{"map.inspect fractional slot", `{"type":"map.inspect","id":"v6","kind":"driver","slot":1.5}`, "v6"},

		// location.
		{"location missing lat", `{"type":"location","id":"l1","lng":2}`, "l1"},
		{"location missing lng", `{"type":"location","id":"l2","lat":1}`, "l2"},
		{"location lat null", `{"type":"location","id":"l3","lat":null,"lng":2}`, "l3"},
		{"location lat 91", `{"type":"location","id":"l4","lat":91,"lng":2}`, "l4"},
		{"location lat -91", `{"type":"location","id":"l5","lat":-91,"lng":2}`, "l5"},
		{"location lat 90.0000001", `{"type":"location","id":"l6","lat":90.0000001,"lng":2}`, "l6"},
		{"location lng 181", `{"type":"location","id":"l7","lat":1,"lng":181}`, "l7"},
		{"location lng -181", `{"type":"location","id":"l8","lat":1,"lng":-181}`, "l8"},
		{"location lat as a string", `{"type":"location","id":"l9","lat":"1","lng":2}`, "l9"},
		{"location lat too big for a float64", `{"type":"location","id":"l10","lat":1e400,"lng":2}`, "l10"},
		{"location heading 360", `{"type":"location","id":"l11","lat":1,"lng":2,"heading":360}`, "l11"},
		{"location heading -1", `{"type":"location","id":"l12","lat":1,"lng":2,"heading":-1}`, "l12"},
		{"location negative speed", `{"type":"location","id":"l13","lat":1,"lng":2,"speed_mps":-0.5}`, "l13"},
		{"location speed 101", `{"type":"location","id":"l14","lat":1,"lng":2,"speed_mps":101}`, "l14"},
		{"location at not a time", `{"type":"location","id":"l15","lat":1,"lng":2,"at":"yesterday"}`, "l15"},
		{"location at without a zone", `{"type":"location","id":"l16","lat":1,"lng":2,"at":"2026-11-22T21:00:00.120"}`, "l16"},
		{"location at a date only", `{"type":"location","id":"l17","lat":1,"lng":2,"at":"2026-11-22"}`, "l17"},
		{"location at as a number", `{"type":"location","id":"l18","lat":1,"lng":2,"at":1763845200}`, "l18"},

		// availability.
		{"availability missing available", `{"type":"availability","id":"v1"}`, "v1"},
		{"availability null", `{"type":"availability","id":"v2","available":null}`, "v2"},
		{"availability as a string", `{"type":"availability","id":"v3","available":"true"}`, "v3"},
		{"availability as a number", `{"type":"availability","id":"v4","available":1}`, "v4"},

		// ride.request.
		{"ride.request missing pickup", `{"type":"ride.request","id":"q1","dropoff":{"lat":1,"lng":2}}`, "q1"},
		{"ride.request missing dropoff", `{"type":"ride.request","id":"q2","pickup":{"lat":1,"lng":2}}`, "q2"},
		{"ride.request pickup null", `{"type":"ride.request","id":"q3","pickup":null,"dropoff":{"lat":1,"lng":2}}`, "q3"},
		{"ride.request pickup as a string", `{"type":"ride.request","id":"q4","pickup":"home","dropoff":{"lat":1,"lng":2}}`, "q4"},
		{"ride.request pickup lat 91", `{"type":"ride.request","id":"q5","pickup":{"lat":91,"lng":2},"dropoff":{"lat":1,"lng":2}}`, "q5"},
		{"ride.request pickup lng 181", `{"type":"ride.request","id":"q6","pickup":{"lat":1,"lng":181},"dropoff":{"lat":1,"lng":2}}`, "q6"},
		{"ride.request dropoff lat -91", `{"type":"ride.request","id":"q7","pickup":{"lat":1,"lng":2},"dropoff":{"lat":-91,"lng":2}}`, "q7"},
		{"ride.request dropoff lng -181", `{"type":"ride.request","id":"q8","pickup":{"lat":1,"lng":2},"dropoff":{"lat":1,"lng":-181}}`, "q8"},
		// A missing lat or lng inside pickup/dropoff must be refused, not
		// read as 0 (a ride requested at Null Island).
		{"ride.request pickup without lat", `{"type":"ride.request","id":"q9","pickup":{"lng":2},"dropoff":{"lat":1,"lng":2}}`, "q9"},
		{"ride.request dropoff empty object", `{"type":"ride.request","id":"q10","pickup":{"lat":1,"lng":2},"dropoff":{}}`, "q10"},

		// offers.
		{"offer.accept missing offer_id", `{"type":"offer.accept","id":"o1","trip_id":"t-1"}`, "o1"},
		{"offer.accept missing trip_id", `{"type":"offer.accept","id":"o2","offer_id":"o-1"}`, "o2"},
		{"offer.accept empty offer_id", `{"type":"offer.accept","id":"o3","offer_id":"","trip_id":"t-1"}`, "o3"},
		{"offer.accept trip_id over 256 bytes", `{"type":"offer.accept","id":"o4","offer_id":"o-1","trip_id":"` + long(protocol.MaxTextBytes+1) + `"}`, "o4"},
		{"offer.accept offer_id over 256 bytes", `{"type":"offer.accept","id":"o5","offer_id":"` + long(protocol.MaxTextBytes+1) + `","trip_id":"t-1"}`, "o5"},
		{"offer.accept trip_id as a number", `{"type":"offer.accept","id":"o6","offer_id":"o-1","trip_id":1}`, "o6"},
		{"offer.decline missing offer_id", `{"type":"offer.decline","id":"o7","trip_id":"t-1"}`, "o7"},
		{"offer.decline missing trip_id", `{"type":"offer.decline","id":"o8","offer_id":"o-1"}`, "o8"},

		// trip commands.
		{"trip.arrive missing trip_id", `{"type":"trip.arrive","id":"s1"}`, "s1"},
		{"trip.start missing trip_id", `{"type":"trip.start","id":"s2"}`, "s2"},
		{"trip.complete missing trip_id", `{"type":"trip.complete","id":"s3"}`, "s3"},
		{"trip.complete empty trip_id", `{"type":"trip.complete","id":"s4","trip_id":""}`, "s4"},
		{"trip.arrive trip_id over 256 bytes", `{"type":"trip.arrive","id":"s5","trip_id":"` + long(protocol.MaxTextBytes+1) + `"}`, "s5"},
		{"trip.cancel missing trip_id", `{"type":"trip.cancel","id":"s6","reason":"late"}`, "s6"},
		{"trip.cancel reason over 256 bytes", `{"type":"trip.cancel","id":"s7","trip_id":"t-1","reason":"` + long(protocol.MaxTextBytes+1) + `"}`, "s7"},
		{"trip.cancel reason as a number", `{"type":"trip.cancel","id":"s8","trip_id":"t-1","reason":5}`, "s8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, perr := DecodeFrame([]byte(tc.frame))
			if perr == nil {
				t.Fatalf("DecodeFrame(%.120s) accepted it as %s; want code %q", tc.frame, frameString(f), protocol.CodeBadRequest)
			}
			if perr.Code != protocol.CodeBadRequest {
				t.Errorf("DecodeFrame(%.120s) code = %q, want %q (%v)", tc.frame, perr.Code, protocol.CodeBadRequest, perr)
			}
			if perr.Message == "" {
				t.Errorf("DecodeFrame(%.120s) gave an empty error message", tc.frame)
			}
			if f.ID != tc.wantID {
				t.Errorf("DecodeFrame(%.120s) id = %q (%d bytes), want %q: the error answer must name the frame's id when it is readable and at most %d bytes",
					tc.frame, f.ID, len(f.ID), tc.wantID, protocol.MaxIDBytes)
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	// Who may send what, from protocol.md's client → server table.
	allowed := map[string][]string{
		protocol.MsgLocation:     {protocol.RoleDriver},
		protocol.MsgAvailability: {protocol.RoleDriver},
		protocol.MsgRideRequest:  {protocol.RoleRider},
		protocol.MsgOfferAccept:  {protocol.RoleDriver},
		protocol.MsgOfferDecline: {protocol.RoleDriver},
		protocol.MsgTripArrive:   {protocol.RoleDriver},
		protocol.MsgTripStart:    {protocol.RoleDriver},
		protocol.MsgTripComplete: {protocol.RoleDriver},
		protocol.MsgTripCancel:   {protocol.RoleRider, protocol.RoleDriver},
		// protocol.md: "The live map (viewer) speaks its own messages,
		// documented in the same AsyncAPI file".
		protocol.MsgMapInspect: {protocol.RoleViewer},
	}
	for typ := range protocol.ClientMessageTypes {
		if _, ok := allowed[typ]; !ok {
			t.Errorf("client message type %q is not in protocol.md's table (update this test and the contract)", typ)
		}
	}
	roles := []string{protocol.RoleDriver, protocol.RoleRider, protocol.RoleViewer, "", "admin", "DRIVER"}
	types := make([]string, 0, len(allowed))
	for typ := range allowed {
		types = append(types, typ)
	}
	sort.Strings(types)
	for _, typ := range types {
		for _, role := range roles {
			want := false
			for _, r := range allowed[typ] {
				want = want || r == role
			}
			t.Run(fmt.Sprintf("%s sends %s", role, typ), func(t *testing.T) {
				perr := Authorize(role, protocol.Frame{Type: typ, ID: "x", TripID: "t-1"})
				switch {
				case want && perr != nil:
					t.Errorf("Authorize(%q, %s) = %v, want allowed", role, typ, perr)
				case !want && perr == nil:
					t.Errorf("Authorize(%q, %s) allowed it, want %q", role, typ, protocol.CodeForbidden)
				case !want && perr.Code != protocol.CodeForbidden:
					t.Errorf("Authorize(%q, %s) code = %q, want %q", role, typ, perr.Code, protocol.CodeForbidden)
				}
			})
		}
	}
	for _, typ := range []string{"teleport", "", protocol.MsgAck, protocol.PushTrip} {
		if perr := Authorize(protocol.RoleDriver, protocol.Frame{Type: typ}); perr == nil || perr.Code != protocol.CodeForbidden {
			t.Errorf("Authorize(driver, %q) = %v, want %q", typ, perr, protocol.CodeForbidden)
		}
	}
}

// decodeFrameSeeds are frames good and bad for the fuzz targets.
var decodeFrameSeeds = []string{
	`{"type":"location","lat":37.7749,"lng":-122.4194}`,
	`{"type":"location","id":"p1","lat":37.7749,"lng":-122.4194,"heading":90,"speed_mps":8.5,"at":"2026-11-22T21:00:00.120Z"}`,
	`{"type":"availability","id":"1","available":true}`,
	`{"type":"ride.request","id":"r1","pickup":{"lat":37.7749,"lng":-122.4194},"dropoff":{"lat":37.8044,"lng":-122.2712}}`,
	`{"type":"offer.accept","id":"a1","offer_id":"o-1","trip_id":"t-1"}`,
	`{"type":"offer.decline","offer_id":"o-1","trip_id":"t-1"}`,
	`{"type":"trip.arrive","trip_id":"t-1"}`,
	`{"type":"trip.start","trip_id":"t-1"}`,
	`{"type":"trip.complete","trip_id":"t-1"}`,
	`{"type":"trip.cancel","id":"c1","trip_id":"t-1","reason":"changed my mind"}`,
	`{"TYPE":"trip.start","Trip_ID":"t-1"}`,
	`{"type":"location","lat":91,"lng":2,"id":"x"}`,
	`{"type":"location","lat":1,"lng":2,"heading":360}`,
	`{"type":"location","lat":1e400,"lng":2}`,
	`{"type":"location","lat":1,"lng":2,"at":"yesterday"}`,
	`{"type":"ride.request","pickup":null}`,
	`{"type":"teleport","id":"u"}`,
	`{"type":5}`,
	`{"id":"` + strings.Repeat("x", protocol.MaxIDBytes+1) + `"}`,
	`{"type":"trip.start","trip_id":"t-1"} {}`,
	`{"type":"trip.start","trip_id":"\ud800"}`,
	`{"type":"trip.start","trip_id":"t","trip_id":"u"}`,
	`[]`, `null`, `""`, `{`, ``, "\xff\xfe",
	`{"type":"trip.start","trip_id":"t\xff-1"}`,
	`{"type":"ride.request","pickup":{"lat":1},"pickup":{"lng":2},"dropoff":{"lat":1,"lng":2}}`,
	`{"Type":"location","LAT":1E1,"lng":-0,"unknown":{"a":[1,"x",null]},"heading":null}`,
	`{"type":"map.inspect","kind":"driver","slot":12}`,
	`{"type":"map.inspect","kind":"driver","slot":1.5}`,
	`{"type":"location","lat":1,"lng":2,"id":"\u0000\u00e9"}` + "\n",
	`{"type":"availability","available":"true"}`,
	// Refused by checkStrict: a key twice, at the top and nested; invalid
	// UTF-8 in the id and in a nested string.
	`{"type":"location","id":"d1","lat":1,"lng":2,"lat":3}`,
	`{"type":"ride.request","pickup":{"lat":1,"lng":2,"lat":3},"dropoff":{"lat":1,"lng":2}}`,
	"{\"type\":\"trip.start\",\"id\":\"u\xff1\",\"trip_id\":\"t-1\"}",
	"{\"type\":\"trip.start\",\"trip_id\":\"t-1\",\"x\":[\"\xed\xa0\x80\"]}",
}

func FuzzDecodeFrame(f *testing.F) {
	for _, s := range decodeFrameSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, perr := DecodeFrame(b)
		if len(fr.ID) > protocol.MaxIDBytes {
			t.Fatalf("DecodeFrame(%q) returned an id of %d bytes; ids are at most %d", b, len(fr.ID), protocol.MaxIDBytes)
		}
		if perr != nil {
			if perr.Code != protocol.CodeBadRequest {
				t.Fatalf("DecodeFrame(%q) code = %q, want %q", b, perr.Code, protocol.CodeBadRequest)
			}
			return
		}
		if _, ok := protocol.ClientMessageTypes[fr.Type]; !ok {
			t.Fatalf("DecodeFrame(%q) accepted unknown type %q", b, fr.Type)
		}
		again, err := json.Marshal(fr)
		if err != nil {
			t.Fatalf("re-encode %s: %v", frameString(fr), err)
		}
		fr2, perr := DecodeFrame(again)
		if perr != nil {
			t.Fatalf("DecodeFrame(%q) accepted it as %s, but the re-encoded frame fails: %v", b, again, perr)
		}
		if !reflect.DeepEqual(fr, fr2) {
			t.Fatalf("DecodeFrame(%q) = %s, re-decoded as %s", b, frameString(fr), frameString(fr2))
		}
	})
}

// FuzzDecodeFrameFastPath: whatever segmentio's decoder accepts,
// encoding/json accepts too, as one object with nothing after it, and reads
// the same frame. DecodeFrame relies on it to skip encoding/json.
func FuzzDecodeFrameFastPath(f *testing.F) {
	for _, s := range decodeFrameSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast protocol.Frame
		if fastjson.Unmarshal(b, &fast) != nil {
			return
		}
		var std protocol.Frame
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&std); err != nil {
			t.Fatalf("segmentio accepts %q as %s, encoding/json refuses it: %v", b, frameString(fast), err)
		}
		if rest := bytes.TrimSpace(b[dec.InputOffset():]); len(rest) > 0 {
			t.Fatalf("segmentio accepts %q as %s, encoding/json finds %q after it", b, frameString(fast), rest)
		}
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("%q: segmentio reads %s, encoding/json %s", b, frameString(fast), frameString(std))
		}
	})
}

// BenchmarkDecodeFrame: a driver's location frame, the gateway's commonest.
//
//	go test ./gateway -run XXX -bench DecodeFrame -benchmem
func BenchmarkDecodeFrame(b *testing.B) {
	frame := []byte(`{"type":"location","id":"p1","lat":37.774912,"lng":-122.419415,"heading":90,"speed_mps":8.91,"at":"2026-12-04T20:43:24.123Z"}`)
	b.Run("DecodeFrame", func(b *testing.B) {
		for b.Loop() {
			if _, perr := DecodeFrame(frame); perr != nil {
				b.Fatal(perr)
			}
		}
	})
	// checkStrict alone: what refusing duplicate keys and invalid UTF-8
	// adds to every frame.
	b.Run("checkStrict", func(b *testing.B) {
		for b.Loop() {
			if perr, _ := checkStrict(frame); perr != nil {
				b.Fatal(perr)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var f protocol.Frame
			if perr := decodeFrameStd(frame, &f); perr != nil {
				b.Fatal(perr)
			}
		}
	})
}

// TestDecodeFrameKeepsNothingOfItsInput: the gateway reuses a frame's
// buffer for the next frame as soon as DecodeFrame and the handling are
// done, so a decoded frame must not point into it.
func TestDecodeFrameKeepsNothingOfItsInput(t *testing.T) {
	for _, s := range []string{
		`{"type":"trip.cancel","id":"c1","trip_id":"t-1","reason":"changed my mind"}`,
		`{"type":"location","id":"p1","lat":37.7749,"lng":-122.4194,"at":"2026-11-22T21:00:00.120Z"}`,
		`{"type":"trip.cancel","id":"c1","trip_id":"t-1","reason":"changed my mind"} x`,
	} {
		b := []byte(s)
		f, _ := DecodeFrame(b)
		want := frameString(f)
		for i := range b {
			b[i] = 'X'
		}
		if got := frameString(f); got != want {
			t.Errorf("after its input was overwritten, %s became %s", want, got)
		}
	}
}

// The close codes the contract names are the ones the gateway closes with
// through the WebSocket library's names.
func TestCloseCodesAreTheLibrarys(t *testing.T) {
	for _, tc := range []struct {
		name     string
		contract websocket.StatusCode
		library  websocket.StatusCode
	}{
		{"CloseNormal", protocol.CloseNormal, websocket.StatusNormalClosure},
		{"CloseGoingAway", protocol.CloseGoingAway, websocket.StatusGoingAway},
		{"ClosePolicyViolation", protocol.ClosePolicyViolation, websocket.StatusPolicyViolation},
		{"CloseMessageTooBig", protocol.CloseMessageTooBig, websocket.StatusMessageTooBig},
		{"CloseTryAgainLater", protocol.CloseTryAgainLater, websocket.StatusTryAgainLater},
	} {
		if tc.contract != tc.library {
			t.Errorf("protocol.%s is %d; the gateway closes with %v (%d)", tc.name, int(tc.contract), tc.library, int(tc.library))
		}
	}
}
