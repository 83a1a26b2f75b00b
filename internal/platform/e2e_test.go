package platform

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	ev "github.com/hexride/hexride/events"
)

var (
	pickup  = map[string]any{"lat": 37.7749, "lng": -122.4194}
	dropoff = map[string]any{"lat": 37.7849, "lng": -122.4094}
)

func requestRide(t *testing.T, rider *phone, id string) string {
	t.Helper()
	a := rider.mustAck(id, map[string]any{"type": "ride.request", "pickup": pickup, "dropoff": dropoff})
	tripID, _ := a["trip_id"].(string)
	if tripID == "" {
		t.Fatalf("ack of ride.request has no trip_id: %v", a)
	}
	return tripID
}

// acceptedRide puts driver d-1 online near the pickup on driverOn, has rider
// r-1 on riderOn request a ride, and the driver accept its offer; it returns
// once the rider has seen ACCEPTED.
func acceptedRide(t *testing.T, driverOn, riderOn *env) (driver, rider *phone, tripID string) {
	t.Helper()
	driver = driverOn.connect("driver", "d-1", "")
	driver.goOnline(37.7755, -122.4180)
	rider = riderOn.connect("rider", "r-1", "")
	tripID = requestRide(t, rider, "req")
	offer := driver.await("offer", 15*time.Second, isType("offer"))
	driver.mustAck("acc", map[string]any{"type": "offer.accept", "offer_id": offer["offer_id"], "trip_id": tripID})
	rider.await("ACCEPTED", 10*time.Second, tripState("ACCEPTED"))
	return driver, rider, tripID
}

// tripPushes returns the trip pushes of one trip a phone received, in order.
func tripPushes(p *phone, tripID string) []map[string]any {
	var out []map[string]any
	for _, m := range p.messages() {
		if m["type"] == "trip" && m["trip_id"] == tripID {
			out = append(out, m)
		}
	}
	return out
}

func checkStates(t *testing.T, who string, pushes []map[string]any, states []string, firstVersion int64) {
	t.Helper()
	if len(pushes) != len(states) {
		t.Fatalf("%s: got %d trip pushes %v, want states %v", who, len(pushes), pushes, states)
	}
	for i, m := range pushes {
		if m["state"] != states[i] || num(m, "version") != firstVersion+int64(i) {
			t.Fatalf("%s: push %d is %v v%d, want %s v%d (all: %v)", who, i, m["state"], num(m, "version"), states[i], firstVersion+int64(i), pushes)
		}
	}
}

// checkSeq asserts every push a phone got has a seq one more than the last.
func checkSeq(t *testing.T, p *phone) {
	t.Helper()
	var last int64
	for _, m := range p.messages() {
		if m["type"] == "ack" || m["type"] == "error" {
			if _, has := m["seq"]; has {
				t.Fatalf("%s: answers carry no seq: %v", p.user, m)
			}
			continue
		}
		seq := num(m, "seq")
		if seq != last+1 {
			t.Fatalf("%s: push %v has seq %d after %d", p.user, m, seq, last)
		}
		last = seq
	}
}

func TestOneRideEndToEnd(t *testing.T) {
	e := startPlatform(t, nil)
	driver := e.connect("driver", "d-1", "")
	driver.goOnline(37.7755, -122.4180)
	rider := e.connect("rider", "r-1", "")
	tripID := requestRide(t, rider, "req-1")

	offer := driver.await("offer", 15*time.Second, isType("offer"))
	if offer["trip_id"] != tripID || offer["offer_id"] == "" || num(offer, "pickup_distance_m") <= 0 {
		t.Fatalf("bad offer %v", offer)
	}
	if _, err := time.Parse(ev.TimeFormat, offer["expires_at"].(string)); err != nil {
		t.Fatalf("expires_at %v is not RFC 3339 with millis: %v", offer["expires_at"], err)
	}
	driver.mustAck("acc", map[string]any{"type": "offer.accept", "offer_id": offer["offer_id"], "trip_id": tripID})
	driver.await("ACCEPTED", 10*time.Second, tripState("ACCEPTED"))
	loc := rider.await("driver.location", 10*time.Second, isType("driver.location"))
	if loc["trip_id"] != tripID || loc["lat"] != 37.7755 {
		t.Fatalf("bad driver.location %v", loc)
	}
	for i, step := range []struct{ cmd, state string }{{"trip.arrive", "ARRIVED"}, {"trip.start", "IN_PROGRESS"}, {"trip.complete", "COMPLETED"}} {
		driver.mustAck("step"+string(rune('0'+i)), map[string]any{"type": step.cmd, "trip_id": tripID})
		driver.await(step.state, 10*time.Second, tripState(step.state))
	}
	rider.await("COMPLETED", 10*time.Second, tripState("COMPLETED"))

	checkStates(t, "rider", tripPushes(rider, tripID), []string{"REQUESTED", "OFFERED", "ACCEPTED", "ARRIVED", "IN_PROGRESS", "COMPLETED"}, 1)
	checkStates(t, "driver", tripPushes(driver, tripID), []string{"OFFERED", "ACCEPTED", "ARRIVED", "IN_PROGRESS", "COMPLETED"}, 2)
	checkSeq(t, rider)
	checkSeq(t, driver)
	final := tripPushes(rider, tripID)[5]
	if final["driver_id"] != "d-1" || final["rider_id"] != "r-1" {
		t.Fatalf("completed trip names %v/%v, want d-1/r-1", final["driver_id"], final["rider_id"])
	}
	// driver.location only while the driver is on the way or driving.
	state := ""
	for _, m := range rider.messages() {
		switch m["type"] {
		case "trip":
			state, _ = m["state"].(string)
		case "driver.location":
			if state != "ACCEPTED" && state != "ARRIVED" && state != "IN_PROGRESS" {
				t.Fatalf("rider got driver.location while the trip was %s", state)
			}
		}
	}
}

func TestDeclineReoffersToNextDriver(t *testing.T) {
	e := startPlatform(t, nil)
	near := e.connect("driver", "d-near", "")
	near.goOnline(37.7750, -122.4190)
	far := e.connect("driver", "d-far", "")
	far.goOnline(37.7800, -122.4100)
	time.Sleep(500 * time.Millisecond) // both pings indexed before the request
	rider := e.connect("rider", "r-1", "")
	tripID := requestRide(t, rider, "req")

	o1 := near.await("offer", 15*time.Second, isType("offer"))
	near.mustAck("dec", map[string]any{"type": "offer.decline", "offer_id": o1["offer_id"], "trip_id": tripID})
	o2 := far.await("offer", 15*time.Second, isType("offer"))
	if o2["trip_id"] != tripID || o2["offer_id"] == o1["offer_id"] {
		t.Fatalf("second offer %v", o2)
	}
	far.mustAck("acc", map[string]any{"type": "offer.accept", "offer_id": o2["offer_id"], "trip_id": tripID})
	got := rider.await("ACCEPTED", 10*time.Second, tripState("ACCEPTED"))
	if got["driver_id"] != "d-far" {
		t.Fatalf("accepted by %v, want d-far", got["driver_id"])
	}
	checkStates(t, "rider", tripPushes(rider, tripID), []string{"REQUESTED", "OFFERED", "REQUESTED", "OFFERED", "ACCEPTED"}, 1)
	if r := tripPushes(rider, tripID)[2]["reason"]; r != "offer_declined" {
		t.Fatalf("reason after decline = %v", r)
	}
	// The declined driver heard the offer close and was not offered it again.
	// (It may have come before the decline's ack, which mustAck skipped
	// past: look at everything received.)
	closed := func() bool {
		for _, m := range near.messages() {
			if m["type"] == "trip" && m["state"] == "REQUESTED" {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); !closed(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("d-near: no trip push closing its offer within 5s; saw %v", near.messages())
		}
	}
	for _, m := range near.messages() {
		if m["type"] == "offer" && m["offer_id"] != o1["offer_id"] {
			t.Fatalf("declined driver was offered again: %v", m)
		}
	}
}

func TestOfferTimeoutReoffers(t *testing.T) {
	e := startPlatform(t, func(c *Config) { c.OfferTimeout = time.Second })
	silent := e.connect("driver", "d-silent", "")
	silent.goOnline(37.7750, -122.4190)
	other := e.connect("driver", "d-other", "")
	other.goOnline(37.7800, -122.4100)
	time.Sleep(500 * time.Millisecond)
	rider := e.connect("rider", "r-1", "")
	tripID := requestRide(t, rider, "req")

	o1 := silent.await("offer", 15*time.Second, isType("offer"))
	o2 := other.await("offer after timeout", 15*time.Second, isType("offer"))
	if o2["trip_id"] != tripID {
		t.Fatalf("second offer %v", o2)
	}
	// Accepting the expired offer is a conflict and changes nothing.
	a := silent.command("late", map[string]any{"type": "offer.accept", "offer_id": o1["offer_id"], "trip_id": tripID})
	if a["type"] != "error" || a["code"] != "conflict" {
		t.Fatalf("late accept answered %v, want conflict", a)
	}
	other.mustAck("acc", map[string]any{"type": "offer.accept", "offer_id": o2["offer_id"], "trip_id": tripID})
	rider.await("ACCEPTED", 10*time.Second, tripState("ACCEPTED"))
	pushes := tripPushes(rider, tripID)
	checkStates(t, "rider", pushes, []string{"REQUESTED", "OFFERED", "REQUESTED", "OFFERED", "ACCEPTED"}, 1)
	if pushes[2]["reason"] != "offer_expired" {
		t.Fatalf("reason after timeout = %v", pushes[2]["reason"])
	}
	if pushes[4]["driver_id"] != "d-other" {
		t.Fatalf("accepted by %v", pushes[4]["driver_id"])
	}
}

func TestNoDriversWithinDeadline(t *testing.T) {
	e := startPlatform(t, func(c *Config) { c.OfferTimeout = 500 * time.Millisecond; c.SearchDeadline = 2 * time.Second })
	rider := e.connect("rider", "r-1", "")
	start := time.Now()
	tripID := requestRide(t, rider, "req")
	m := rider.await("NO_DRIVERS", 10*time.Second, tripState("NO_DRIVERS"))
	if m["trip_id"] != tripID {
		t.Fatalf("NO_DRIVERS for %v", m["trip_id"])
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("gave up after %s, before the 2s deadline", took)
	}
	// The rider may ask again once the first request has ended.
	requestRide(t, rider, "req-again")
}

func TestRiderCancelsBeforePickup(t *testing.T) {
	e := startPlatform(t, nil)
	driver, rider, tripID := acceptedRide(t, e, e)

	// Someone else's trip is forbidden to them.
	stranger := e.connect("rider", "r-2", "")
	if a := stranger.command("x", map[string]any{"type": "trip.cancel", "trip_id": tripID}); a["code"] != "forbidden" {
		t.Fatalf("stranger cancel answered %v, want forbidden", a)
	}
	rider.mustAck("cancel", map[string]any{"type": "trip.cancel", "trip_id": tripID, "reason": "changed my mind"})
	for _, p := range []*phone{rider, driver} {
		m := p.await("CANCELLED", 10*time.Second, tripState("CANCELLED"))
		if m["reason"] != "cancelled_by_rider: changed my mind" {
			t.Fatalf("%s: reason %v", p.user, m["reason"])
		}
	}
	// After pickup-less cancel the driver is free again: a new ride is offered to them.
	tripID2 := requestRide(t, stranger, "req2")
	o2 := driver.await("second offer", 15*time.Second, func(m map[string]any) bool { return m["type"] == "offer" && m["trip_id"] == tripID2 })
	if o2 == nil {
		t.Fatal("driver not offered again after the cancel")
	}
	// A trip in progress cannot be cancelled.
	if a := rider.command("again", map[string]any{"type": "trip.cancel", "trip_id": tripID}); a["code"] != "conflict" {
		t.Fatalf("cancelling a cancelled trip answered %v, want conflict", a)
	}
}

func TestStaleDriverIsNeverOffered(t *testing.T) {
	e := startPlatform(t, func(c *Config) {
		c.StaleAfter = time.Second
		c.SearchDeadline = 3 * time.Second
		c.OfferTimeout = time.Second
	})
	stale := e.connect("driver", "d-stale", "")
	stale.mustAck("on", map[string]any{"type": "availability", "available": true})
	stale.send(map[string]any{"type": "location", "lat": 37.7750, "lng": -122.4190}) // very close, then silent
	time.Sleep(1500 * time.Millisecond)

	rider := e.connect("rider", "r-1", "")
	requestRide(t, rider, "req-only-stale")
	rider.await("NO_DRIVERS", 10*time.Second, tripState("NO_DRIVERS"))

	fresh := e.connect("driver", "d-fresh", "")
	fresh.goOnline(37.7800, -122.4100) // farther, but alive
	time.Sleep(500 * time.Millisecond)
	tripID := requestRide(t, rider, "req-fresh")
	o := fresh.await("offer", 15*time.Second, isType("offer"))
	if o["trip_id"] != tripID {
		t.Fatalf("offer %v", o)
	}
	for _, m := range stale.messages() {
		if m["type"] == "offer" {
			t.Fatalf("stale driver was offered: %v", m)
		}
	}
}

func TestHandshakeWithoutValidTokenIs401(t *testing.T) {
	e := startPlatform(t, nil)
	expired := func() string {
		tok, err := e.run.Tokens.Mint("d-1", "driver", -time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}()
	other, _ := NewTokensForTest("another-secret").Mint("d-1", "driver", time.Hour)
	for name, header := range map[string]string{
		"missing": "", "garbage": "Bearer not-a-jwt", "expired": "Bearer " + expired, "wrong secret": "Bearer " + other,
		"not bearer": "Basic Zm9vOmJhcg==",
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+e.run.Addr+"/v1/ws", nil)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			if header != "" {
				req.Header.Set("Authorization", header)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body struct{ Error, Message string }
			_ = json.NewDecoder(res.Body).Decode(&body)
			if res.StatusCode != http.StatusUnauthorized || body.Error != "unauthorized" || body.Message == "" {
				t.Fatalf("got %d %+v, want 401 unauthorized with a message", res.StatusCode, body)
			}
		})
	}
	// The token query parameter works for browsers.
	p := e.connect("rider", "r-q", "token="+e.token("rider", "r-q"))
	if a := p.command("q", map[string]any{"type": "trip.cancel", "trip_id": "nope"}); a["code"] != "not_found" {
		t.Fatalf("query-token socket answered %v", a)
	}
}

func TestBadFramesGetErrorsAndProduceNothing(t *testing.T) {
	e := startPlatform(t, nil)
	driver := e.connect("driver", "d-1", "")
	rider := e.connect("rider", "r-1", "")
	before := map[string]int64{}
	for _, topic := range []string{ev.TopicDriverEvents, ev.TopicTripCommands} {
		before[topic] = e.topicEnd(topic)
	}
	cases := []struct {
		p     *phone
		frame string
		id    string
		code  string
	}{
		{driver, `{"type":"location","lat":91,"lng":0,"id":"a"}`, "a", "bad_request"},
		{driver, `not json`, "", "bad_request"},
		{driver, `{"type":"teleport","id":"b"}`, "b", "bad_request"},
		{driver, `{"id":"c"}`, "c", "bad_request"},
		{driver, `{"type":"availability","id":"d"}`, "d", "bad_request"},
		{driver, `{"type":"ride.request","id":"e","pickup":{"lat":1,"lng":1},"dropoff":{"lat":1,"lng":1}}`, "e", "forbidden"},
		{rider, `{"type":"location","lat":1,"lng":1,"id":"f"}`, "f", "forbidden"},
		{rider, `{"type":"ride.request","id":"g","pickup":{"lat":1,"lng":1}}`, "g", "bad_request"},
		{rider, `{"type":"trip.cancel","id":"h","trip_id":"t-does-not-exist"}`, "h", "not_found"},
		{driver, `{"type":"offer.accept","id":"i","trip_id":"t-x","offer_id":"o-x"}`, "i", "not_found"},
		{driver, `{"type":"trip.arrive","id":"j"}`, "j", "bad_request"},
	}
	for _, c := range cases {
		c.p.sendRaw(c.frame)
		m := c.p.await("error for "+c.frame, 5*time.Second, func(m map[string]any) bool { return m["type"] == "error" || m["type"] == "ack" })
		if m["type"] != "error" || m["code"] != c.code || m["message"] == "" {
			t.Errorf("%s: got %v, want error %s", c.frame, m, c.code)
		}
		if c.id != "" && m["id"] != c.id {
			t.Errorf("%s: error names id %v, want %s", c.frame, m["id"], c.id)
		}
	}
	for topic, n := range before {
		if got := e.topicEnd(topic); got != n {
			t.Errorf("%s grew from %d to %d events after bad frames", topic, n, got)
		}
	}
	// A frame over 4096 bytes closes the socket with 1009.
	big := `{"type":"location","lat":1,"lng":1,"pad":"` + string(bytes.Repeat([]byte("x"), 5000)) + `"}`
	driver.sendRaw(big)
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-driver.in:
			if ok {
				continue
			}
		case <-deadline:
			t.Fatal("socket not closed after an oversized frame")
		}
		break
	}
	if s := websocket.CloseStatus(driver.readErr); s != websocket.StatusMessageTooBig {
		t.Fatalf("close status %v (%v), want 1009", s, driver.readErr)
	}
}

// TestTripEndsEvenWithoutADispatcher runs no dispatcher at all: tripstate's
// own deadline still ends the request NO_DRIVERS.
func TestTripEndsEvenWithoutADispatcher(t *testing.T) {
	e := startPlatform(t, func(c *Config) { c.OfferTimeout = 500 * time.Millisecond; c.SearchDeadline = time.Second }, Gateway, Tripstate)
	rider := e.connect("rider", "r-1", "")
	tripID := requestRide(t, rider, "req")
	m := rider.await("NO_DRIVERS", 10*time.Second, tripState("NO_DRIVERS"))
	if m["trip_id"] != tripID || m["reason"] != "no_drivers" {
		t.Fatalf("got %v", m)
	}
	checkStates(t, "rider", tripPushes(rider, tripID), []string{"REQUESTED", "NO_DRIVERS"}, 1)
}
