package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hexride/hexride/protocol"
)

// strictCases are frames each decoder reads, but that say two things at
// once: a key given twice, or a string that is not valid UTF-8.
var strictCases = []struct {
	name    string
	frame   string
	wantID  string // the id the error answer must name
	wantMsg string // what the message must say
}{
	{"lat twice", `{"type":"location","id":"d1","lat":1,"lng":2,"lat":3}`, "d1", `duplicate key "lat"`},
	{"type twice", `{"type":"trip.start","type":"trip.cancel","id":"d2","trip_id":"t-1"}`, "d2", `duplicate key "type"`},
	{"trip_id twice", `{"type":"trip.start","id":"d3","trip_id":"t-1","trip_id":"t-2"}`, "d3", `duplicate key "trip_id"`},
	{"a key twice, once escaped", `{"type":"location","id":"d4","lat":1,"lng":2,"l\u0061t":3}`, "d4", `duplicate key "lat"`},
	{"pickup lat twice", `{"type":"ride.request","id":"d5","pickup":{"lat":1,"lng":2,"lat":3},"dropoff":{"lat":1,"lng":2}}`, "d5", `at "/pickup/lat"`},
	{"pickup twice", `{"type":"ride.request","id":"d6","pickup":{"lat":1,"lng":2},"dropoff":{"lat":1,"lng":2},"pickup":{"lat":5,"lng":6}}`, "d6", `duplicate key "pickup"`},
	{"a key twice in an unknown field", `{"type":"trip.start","id":"d7","trip_id":"t-1","extra":[{"a":1,"a":2}]}`, "d7", `at "/extra/0/a"`},
	// Which id would the answer name? Neither.
	{"id twice", `{"type":"trip.start","id":"d8","id":"d9","trip_id":"t-1"}`, "", `duplicate key "id"`},

	{"invalid UTF-8 in the id", "{\"type\":\"trip.start\",\"id\":\"u\xff1\",\"trip_id\":\"t-1\"}", "", `invalid UTF-8`},
	{"invalid UTF-8 in trip_id", "{\"type\":\"trip.start\",\"id\":\"u2\",\"trip_id\":\"t-\xc3\x28\"}", "u2", `at "/trip_id"`},
	{"invalid UTF-8 in a reason", "{\"type\":\"trip.cancel\",\"id\":\"u3\",\"trip_id\":\"t-1\",\"reason\":\"late\xed\xa0\x80\"}", "u3", `at "/reason"`},
	{"invalid UTF-8 in the type", "{\"type\":\"trip.start\xff\",\"id\":\"u4\",\"trip_id\":\"t-1\"}", "u4", `invalid UTF-8`},
	{"invalid UTF-8 in a key", "{\"type\":\"trip.start\",\"id\":\"u5\",\"trip_id\":\"t-1\",\"x\xff\":1}", "u5", `invalid UTF-8`},
	{"invalid UTF-8 in an unknown field", "{\"type\":\"trip.start\",\"id\":\"u6\",\"trip_id\":\"t-1\",\"x\":[\"\xfe\"]}", "u6", `at "/x/0"`},
	{"unpaired surrogate escape in the id", `{"type":"trip.start","id":"\ud800","trip_id":"t-1"}`, "", `unpaired surrogate`},
	{"unpaired surrogate escape in trip_id", `{"type":"trip.start","id":"u7","trip_id":"t-\udc00"}`, "u7", `at "/trip_id"`},
}

func TestDecodeFrameStrict(t *testing.T) {
	for _, tc := range strictCases {
		t.Run(tc.name, func(t *testing.T) {
			f, perr := DecodeFrame([]byte(tc.frame))
			if perr == nil {
				t.Fatalf("DecodeFrame(%q) accepted it as %s; want %q", tc.frame, frameString(f), protocol.CodeBadRequest)
			}
			if perr.Code != protocol.CodeBadRequest {
				t.Errorf("DecodeFrame(%q) code = %q, want %q", tc.frame, perr.Code, protocol.CodeBadRequest)
			}
			if !strings.Contains(perr.Message, tc.wantMsg) {
				t.Errorf("DecodeFrame(%q) message = %q, want it to say %q", tc.frame, perr.Message, tc.wantMsg)
			}
			if f.ID != tc.wantID {
				t.Errorf("DecodeFrame(%q) id = %q, want %q", tc.frame, f.ID, tc.wantID)
			}
			if (f != protocol.Frame{ID: f.ID}) {
				t.Errorf("DecodeFrame(%q) returned %s with its error; want nothing but the id", tc.frame, frameString(f))
			}
		})
	}
}

// TestStrictFramesChangeNothing sends each refused frame through a real
// socket: the driver hears bad_request naming the frame's id, and nothing
// reaches the event log. A good frame after them is published, so the
// socket under test does publish what it accepts.
func TestStrictFramesChangeNothing(t *testing.T) {
	s, hs := startGateway(t)
	pub := s.pub.(*published)
	c := dialDriver(t, s, hs, "strict-driver")
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range strictCases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := exchange(ctx, t, c, tc.frame)
			if a.Type != protocol.MsgError || a.Code != protocol.CodeBadRequest || a.ID != tc.wantID || !strings.Contains(a.Message, tc.wantMsg) {
				t.Fatalf("answer %s; want a %s error with id %q saying %q", b, protocol.CodeBadRequest, tc.wantID, tc.wantMsg)
			}
		})
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"location","id":"ok","lat":1,"lng":2}`)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), `"type":"ack"`) {
		t.Fatalf("answer to a good location: %s (%v); want an ack", b, err)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if len(pub.outs) != 1 {
		t.Fatalf("%d events published; want 1, the good location (every refused frame must change nothing)", len(pub.outs))
	}
}
