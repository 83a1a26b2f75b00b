package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// metresNorth is a point d metres due north of (lat, lng): the tests'
// distances are then exact to the planar metric checkLocation uses.
func metresNorth(lat, lng, d float64) (float64, float64) {
	return lat + d/(6371008.8*3.141592653589793/180), lng
}

func TestCheckLocation(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	const lat, lng = 37.7749, -122.4194
	type step struct {
		after   time.Duration // since t0, the gateway's receive time
		northM  float64       // the location, metres north of (lat, lng)
		at      string        // the frame's at, if any
		refused string        // the metric reason, or "" if accepted
		msg     string        // what a refusal's message must say
	}
	at := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339Nano) }
	tests := []struct {
		name  string
		steps []step
	}{
		{"first location of a session is accepted, however far", []step{{0, 5e6, "", "", ""}}},
		{"city driving", []step{{0, 0, "", "", ""}, {5 * time.Second, 80, "", "", ""}, {10 * time.Second, 160, "", "", ""}}},
		{"a jump across town a second later", []step{{0, 0, "", "", ""}, {time.Second, 10000, "", refusedSpeed, "faster than 250 km/h"}}},
		{"just under the limit plus the slack", []step{{0, 0, "", "", ""}, {10 * time.Second, 250/3.6*10 + locationSlackM - 1, "", "", ""}}},
		{"just over the limit plus the slack", []step{{0, 0, "", "", ""}, {10 * time.Second, 250/3.6*10 + locationSlackM + 1, "", refusedSpeed, "from the last accepted one"}}},
		{"GPS jitter between pings sent back to back", []step{{0, 0, "", "", ""}, {10 * time.Millisecond, 30, "", "", ""}, {20 * time.Millisecond, 0, "", "", ""}}},
		// The slack is a balance, not a fresh allowance each frame.
		{"creeping in slack-sized steps", []step{{0, 0, "", "", ""}, {50 * time.Millisecond, 200, "", "", ""},
			{100 * time.Millisecond, 400, "", refusedSpeed, "faster than"}}},
		{"a refused location is not the new last one", []step{{0, 0, "", "", ""}, {time.Second, 10000, "", refusedSpeed, ""},
			{2 * time.Second, 100, "", "", ""}}},
		{"a long pause allows a long way", []step{{0, 0, "", "", ""}, {10 * time.Minute, 30000, "", "", ""}}},
		{"at now", []step{{0, 0, at(0), "", ""}}},
		{"at within the leeway ahead", []step{{0, 0, at(29 * time.Second), "", ""}}},
		{"at 31 s ahead", []step{{0, 0, at(31 * time.Second), refusedClockSkew, "ahead of the gateway's clock"}}},
		{"at 4 minutes old", []step{{0, 0, at(-4 * time.Minute), "", ""}}},
		{"at 6 minutes old", []step{{0, 0, at(-6 * time.Minute), refusedClockSkew, "behind the gateway's clock"}}},
		{"a skewed first location does not become the last one", []step{{0, 0, at(time.Hour), refusedClockSkew, ""},
			{time.Second, 10000, "", "", ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var last lastFix
			for i, st := range tc.steps {
				la, ln := metresNorth(lat, lng, st.northM)
				f := protocol.Frame{Type: protocol.MsgLocation, Lat: &la, Lng: &ln, At: st.at}
				speed0 := testutil.ToFloat64(refusedSpeedTotal)
				skew0 := testutil.ToFloat64(refusedClockSkewTotal)
				before := last
				perr := checkLocation(&last, &f, t0.Add(st.after), DefaultMaxSpeedKMH)
				dSpeed := testutil.ToFloat64(refusedSpeedTotal) - speed0
				dSkew := testutil.ToFloat64(refusedClockSkewTotal) - skew0
				if st.refused == "" {
					if perr != nil {
						t.Fatalf("step %d (%v m at +%v): refused: %v", i, st.northM, st.after, perr)
					}
					if last.pos.Lat != la || !last.received.Equal(t0.Add(st.after)) {
						t.Fatalf("step %d: accepted, but the last location is %+v", i, last)
					}
					if dSpeed != 0 || dSkew != 0 {
						t.Fatalf("step %d: accepted, but counted as refused", i)
					}
					continue
				}
				if perr == nil || perr.Code != protocol.CodeBadRequest || !strings.Contains(perr.Message, st.msg) {
					t.Fatalf("step %d (%v m at +%v): got %v, want %s saying %q", i, st.northM, st.after, perr, protocol.CodeBadRequest, st.msg)
				}
				if last != before {
					t.Fatalf("step %d: refused, but the last location changed to %+v", i, last)
				}
				want := map[string][2]float64{refusedSpeed: {1, 0}, refusedClockSkew: {0, 1}}[st.refused]
				if dSpeed != want[0] || dSkew != want[1] {
					t.Fatalf("step %d: counted speed +%v, clock_skew +%v; want it under %s", i, dSpeed, dSkew, st.refused)
				}
			}
		})
	}
}

func TestCheckLocationDoesNotAllocate(t *testing.T) {
	t0 := time.Now()
	lat, lng := 37.7749, -122.4194
	f := protocol.Frame{Type: protocol.MsgLocation, Lat: &lat, Lng: &lng, At: t0.UTC().Format(time.RFC3339Nano)}
	var last lastFix
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		n++
		if perr := checkLocation(&last, &f, t0.Add(time.Duration(n)*time.Second), DefaultMaxSpeedKMH); perr != nil {
			t.Fatal(perr)
		}
	})
	if allocs != 0 {
		t.Fatalf("an accepted location costs %v allocations; want 0", allocs)
	}
}

// TestImplausibleLocationsAreNotPublished drives a real socket: the first
// location is published, a jump across town a moment later and a location
// stamped from the future are answered bad_request and never reach the
// event log (so never the supply index), and a nearby one is published.
func TestImplausibleLocationsAreNotPublished(t *testing.T) {
	s, hs := startGateway(t)
	pub := s.pub.(*published)
	c := dialDriver(t, s, hs, "teleporter")
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	far, _ := metresNorth(37.7749, -122.4194, 20000)
	near, _ := metresNorth(37.7749, -122.4194, 20)
	for _, tc := range []struct {
		frame string
		want  string // "ack", or the bad_request message's gist
	}{
		{`{"type":"location","id":"l1","lat":37.7749,"lng":-122.4194}`, "ack"},
		{fmt.Sprintf(`{"type":"location","id":"l2","lat":%v,"lng":-122.4194}`, far), "faster than 250 km/h"},
		{fmt.Sprintf(`{"type":"location","id":"l3","lat":%v,"lng":-122.4194,"at":%q}`, near, future), "ahead of the gateway's clock"},
		{fmt.Sprintf(`{"type":"location","id":"l4","lat":%v,"lng":-122.4194}`, near), "ack"},
	} {
		a, b := exchange(ctx, t, c, tc.frame)
		switch {
		case tc.want == "ack" && a.Type != protocol.MsgAck:
			t.Fatalf("%s: answer %s, want an ack", tc.frame, b)
		case tc.want != "ack" && (a.Type != protocol.MsgError || a.Code != protocol.CodeBadRequest || !strings.Contains(a.Message, tc.want)):
			t.Fatalf("%s: answer %s, want %s saying %q", tc.frame, b, protocol.CodeBadRequest, tc.want)
		}
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	var lats []float64
	for _, out := range pub.outs {
		var loc ride.DriverLocation
		if err := out.Env.DecodePayload(&loc); err != nil {
			t.Fatal(err)
		}
		lats = append(lats, loc.Lat)
	}
	if len(lats) != 2 || lats[0] != 37.7749 || lats[1] != near {
		t.Fatalf("published locations at lat %v; want [37.7749 %v]", lats, near)
	}
}

// BenchmarkCheckLocation: what the check adds to an accepted ping.
//
//	go test ./gateway -run XXX -bench CheckLocation -benchmem
func BenchmarkCheckLocation(b *testing.B) {
	t0 := time.Now()
	lat, lng := 37.7749, -122.4194
	f := protocol.Frame{Type: protocol.MsgLocation, Lat: &lat, Lng: &lng, At: t0.UTC().Format(time.RFC3339Nano)}
	var last lastFix
	n := 0
	for b.Loop() {
		n++
		if perr := checkLocation(&last, &f, t0.Add(time.Duration(n)), DefaultMaxSpeedKMH); perr != nil {
			b.Fatal(perr)
		}
	}
}
