package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/events/kafka"
	"github.com/hexride/hexride/internal/platform"
	"github.com/hexride/hexride/livemap"
	"github.com/hexride/hexride/ride"
)

// The viewer socket speaks the contract of asyncapi.yaml over the real
// gateway: a snapshot, then deltas tick by tick at a bounded rate, answers
// to map.inspect, errors for anything else, and never a rider id.
func TestViewerSocket(t *testing.T) {
	addr, brokers := startPlatform(t, nil, platform.Gateway)
	prod := kafka.NewProducer(brokers, time.Millisecond)
	defer prod.Close()
	ctx := context.Background()
	publish := func(topic, typ, key string, payload any) {
		t.Helper()
		e, err := ev.New(typ, key, time.Now(), payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := prod.Publish(ctx, ev.Outgoing{Topic: topic, Env: e}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	publish(ev.TopicDriverEvents, ev.TypeDriverAvailability, "vd-1", ride.DriverAvailability{DriverID: "vd-1", Available: true})
	publish(ev.TopicDriverEvents, ev.TypeDriverLocation, "vd-1", ride.DriverLocation{DriverID: "vd-1", Lat: 37.77, Lng: -122.42})
	publish(ev.TopicTripEvents, ev.TypeTripUpdated, "vt-1", ride.TripUpdated{Cause: ev.TypeRideRequest, Trip: ride.Trip{
		TripID: "vt-1", State: ride.StateRequested, Version: 1, RiderID: "secret-rider-7",
		Pickup: ride.LatLng{Lat: 37.771, Lng: -122.421}, Dropoff: ride.LatLng{Lat: 37.78, Lng: -122.40}, RequestedAt: now, UpdatedAt: now}})

	res, err := http.Post("http://"+addr+"/v1/dev/token", "application/json", strings.NewReader(`{"role":"viewer","sub":"ops-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, "ws://"+addr+"/v1/ws?token="+tok.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(websocket.StatusNormalClosure, "")
	c.SetReadLimit(1 << 20)

	read := func(t *testing.T) (string, []byte) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, b, err := c.Read(rctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if strings.Contains(string(b), "secret-rider-7") {
			t.Fatalf("a viewer received a rider id: %s", b)
		}
		var m struct{ Type string }
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("frame is not JSON: %s", b)
		}
		return m.Type, b
	}

	typ, b := read(t)
	if typ != livemap.MsgSnapshot {
		t.Fatalf("first frame %s, want a snapshot", b)
	}
	var snap livemap.SnapshotMessage
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}
	// Deltas follow, tick by tick, until the driver and the request show.
	tick, drivers, trips := snap.Tick, len(snap.Drivers)/4, len(snap.Trips)/7
	start := time.Now()
	frames := 0
	for drivers == 0 || trips == 0 {
		typ, b := read(t)
		var d livemap.DeltaMessage
		if typ != livemap.MsgDelta || json.Unmarshal(b, &d) != nil || d.Tick != tick+1 {
			t.Fatalf("after tick %d got %s, want the next delta", tick, b)
		}
		tick, frames = d.Tick, frames+1
		drivers += len(d.Drivers)/4 - len(d.DriversGone)
		trips += len(d.Trips)/7 - len(d.TripsGone)
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no driver and request on the map after 30 s (%d drivers, %d trips)", drivers, trips)
		}
	}
	for range 8 {
		if typ, b := read(t); typ != livemap.MsgDelta {
			t.Fatalf("got %s, want a delta", b)
		}
		frames++
	}
	if rate := float64(frames) / time.Since(start).Seconds(); rate > 5 {
		t.Errorf("%.1f frames/s, more than the hub's four a second", rate)
	}

	send := func(t *testing.T, v string) {
		t.Helper()
		if err := c.Write(ctx, websocket.MessageText, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	// answer skips map frames until the answer to id arrives.
	answer := func(t *testing.T, id string) map[string]any {
		t.Helper()
		for {
			typ, b := read(t)
			if typ == livemap.MsgSnapshot || typ == livemap.MsgDelta {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if got, _ := m["id"].(string); got != id {
				t.Fatalf("answer %s, want one for %q", b, id)
			}
			return m
		}
	}
	tests := []struct {
		name, frame, id string
		wantType        string
		wantCode        string
	}{
		{"a driver", `{"type":"map.inspect","id":"i1","kind":"driver","slot":0}`, "i1", livemap.MsgDetail, ""},
		{"a trip", `{"type":"map.inspect","id":"i2","kind":"trip","slot":0}`, "i2", livemap.MsgDetail, ""},
		{"an empty slot", `{"type":"map.inspect","id":"i3","kind":"driver","slot":999}`, "i3", "error", "not_found"},
		{"an unknown kind", `{"type":"map.inspect","id":"i4","kind":"rider","slot":0}`, "i4", "error", "bad_request"},
		{"a phone's command", `{"type":"location","id":"i5","lat":1,"lng":2}`, "i5", "error", "forbidden"},
		{"not JSON", `{"id":"i6",`, "", "error", "bad_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			send(t, tc.frame)
			m := answer(t, tc.id)
			if m["type"] != tc.wantType || (tc.wantCode != "" && m["code"] != tc.wantCode) {
				t.Fatalf("answer %v, want %s %s", m, tc.wantType, tc.wantCode)
			}
			if tc.wantType == livemap.MsgDetail {
				if d, ok := m["driver"].(map[string]any); ok && d["driver_id"] != "vd-1" {
					t.Errorf("driver detail %v, want vd-1", d)
				}
				if tr, ok := m["trip"].(map[string]any); ok && tr["trip_id"] != "vt-1" {
					t.Errorf("trip detail %v, want vt-1", tr)
				}
			}
		})
	}
}
