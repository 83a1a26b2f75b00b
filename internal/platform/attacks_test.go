package platform

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	ev "github.com/hexride/hexride/events"
)

// state is what an attack must leave as it was: the end of every topic and
// every Redis value, but for the rate limiters' buckets (rl:*), which every
// frame draws on, refused or not, and which refill and expire on their own.
type state struct {
	ends  map[string]int64
	redis map[string]string
}

func (e *env) state() state {
	e.t.Helper()
	s := state{ends: map[string]int64{}, redis: map[string]string{}}
	for _, topic := range ev.Topics {
		s.ends[topic] = e.topicEnd(topic)
	}
	rdb := e.run.Redis
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, "*", 500).Iterator()
	for iter.Next(ctx) {
		if strings.HasPrefix(iter.Val(), "rl:") {
			continue
		}
		v, err := rdb.Dump(ctx, iter.Val()).Result()
		if err != nil && err != redis.Nil {
			e.t.Fatal(err)
		}
		s.redis[iter.Val()] = v
	}
	if err := iter.Err(); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// changes lists how after differs from s.
func (s state) changes(after state) []string {
	var out []string
	for topic, n := range s.ends {
		if after.ends[topic] != n {
			out = append(out, fmt.Sprintf("%s grew from %d to %d events", topic, n, after.ends[topic]))
		}
	}
	for k, v := range after.redis {
		if old, ok := s.redis[k]; !ok {
			out = append(out, "redis key "+k+" appeared")
		} else if old != v {
			out = append(out, "redis key "+k+" changed")
		}
	}
	for k := range s.redis {
		if _, ok := after.redis[k]; !ok {
			out = append(out, "redis key "+k+" vanished")
		}
	}
	return out
}

// handshake dials the gateway and returns the HTTP status it answered.
func (e *env) handshake(token string, header http.Header) int {
	e.t.Helper()
	if header == nil {
		header = http.Header{}
	}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(ctx, "ws://"+e.run.Addr+"/v1/ws", &websocket.DialOptions{HTTPHeader: header})
	if err == nil {
		c.CloseNow()
		return http.StatusSwitchingProtocols
	}
	if res == nil {
		e.t.Fatalf("dial: %v", err)
	}
	return res.StatusCode
}

const attackSecret = "attack-test-secret"

func signed(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAttacksAreRefusedAndChangeNothing tries, as an outsider with the
// public contract, each attack the gateway must refuse: each gets the
// documented answer, and no topic grows and no Redis value changes.
func TestAttacksAreRefusedAndChangeNothing(t *testing.T) {
	const perIP = 5
	e := startPlatform(t, func(c *Config) { c.JWTSecret, c.MaxSocketsPerIP = attackSecret, perIP })
	driver := e.connect("driver", "d-far", "")
	driver.mustAck("on", map[string]any{"type": "availability", "available": true})
	driver.mustAck("here", map[string]any{"type": "location", "lat": 37.7749, "lng": -122.4194})
	rider := e.connect("rider", "r-1", "")
	// A trip of r-1's, its pickup 20 km from the only driver: it waits,
	// changing nothing, while others try to act on it.
	a := rider.mustAck("req", map[string]any{"type": "ride.request", "pickup": map[string]any{"lat": 37.95, "lng": -122.25},
		"dropoff": map[string]any{"lat": 37.96, "lng": -122.24}})
	tripID, _ := a["trip_id"].(string)
	rider.await("REQUESTED", 10*time.Second, tripState("REQUESTED"))
	impostor := e.connect("driver", "r-1", "after_seq=0")
	now := time.Now()
	claims := func(role, sub string, iat, exp time.Time) jwt.MapClaims {
		return jwt.MapClaims{"sub": sub, "role": role, "iat": iat.Unix(), "exp": exp.Unix()}
	}
	frame := func(p *phone, raw string) func(t *testing.T) string {
		return func(t *testing.T) string {
			p.sendRaw(raw)
			m := p.await("answer to "+raw, 5*time.Second, func(m map[string]any) bool { return m["type"] == "error" || m["type"] == "ack" })
			if m["type"] == "ack" {
				return "ack"
			}
			return fmt.Sprint(m["code"])
		}
	}
	status := func(token string, header http.Header) func(t *testing.T) string {
		return func(t *testing.T) string { return fmt.Sprint(e.handshake(token, header)) }
	}
	const sixth = "a sixth socket from one address"
	setup := map[string]func(){ // before the state is taken
		sixth: func() {
			e.connect("driver", "d-idle-1", "")
			e.connect("driver", "d-idle-2", "") // with the three above, the address's limit
			time.Sleep(300 * time.Millisecond)  // their registration written
		},
	}
	cases := []struct {
		name   string
		attack func(t *testing.T) string
		want   string
	}{
		{"token signed with another secret (the old published dev constant)",
			status(signed(t, jwt.SigningMethodHS256, []byte("hexride-dev-secret"), claims("driver", "x", now, now.Add(time.Hour))), nil), "401"},
		{"unsigned token (alg none)",
			status(signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("driver", "x", now, now.Add(time.Hour))), nil), "401"},
		{"token issued a day from now",
			status(signed(t, jwt.SigningMethodHS256, []byte(attackSecret), claims("driver", "x", now.Add(24*time.Hour), now.Add(25*time.Hour))), nil), "401"},
		{"token living a hundred years",
			status(signed(t, jwt.SigningMethodHS256, []byte(attackSecret), claims("driver", "x", now, now.AddDate(100, 0, 0))), nil), "401"},
		{"expired token",
			status(signed(t, jwt.SigningMethodHS256, []byte(attackSecret), claims("driver", "x", now.Add(-2*time.Hour), now.Add(-time.Hour))), nil), "401"},
		{"token without exp",
			status(signed(t, jwt.SigningMethodHS256, []byte(attackSecret), jwt.MapClaims{"sub": "x", "role": "driver", "iat": now.Unix()}), nil), "401"},
		{"foreign Origin", status(e.token("driver", "x"), http.Header{"Origin": {"https://evil.example"}}), "403"},
		{"location 4,000 km from the last a second later",
			frame(driver, `{"type":"location","id":"far","lat":40.7128,"lng":-74.0060}`), "bad_request"},
		{"location stamped an hour ahead",
			frame(driver, fmt.Sprintf(`{"type":"location","id":"ahead","lat":37.7750,"lng":-122.4194,"at":%q}`,
				now.Add(time.Hour).UTC().Format(ev.TimeFormat))), "bad_request"},
		{"duplicate keys in a frame",
			frame(rider, `{"type":"ride.request","id":"dup","pickup":{"lat":37.77,"lng":-122.42,"lat":1},"dropoff":{"lat":37.78,"lng":-122.41}}`), "bad_request"},
		{"invalid UTF-8 in an id", frame(rider, "{\"type\":\"trip.cancel\",\"id\":\"bad\xff\",\"trip_id\":\"t\"}"), "bad_request"},
		{"a driver's command from a rider", frame(rider, `{"type":"offer.accept","id":"steal","trip_id":"t-1","offer_id":"o-1"}`), "forbidden"},
		{"a driver whose sub is a rider's cancels the rider's trip",
			frame(impostor, fmt.Sprintf(`{"type":"trip.cancel","id":"imp-cancel","trip_id":%q}`, tripID)), "forbidden"},
		{"a driver whose sub is a rider's resumes the rider's pushes", func(t *testing.T) string {
			time.Sleep(300 * time.Millisecond) // room for any push to arrive
			for _, m := range impostor.messages() {
				if m["trip_id"] == tripID && m["type"] != "error" {
					return fmt.Sprint("got ", m["type"])
				}
			}
			return "nothing of the rider's"
		}, "nothing of the rider's"},
		{sixth, status(e.token("driver", "d-sixth"), nil), "429"},
		{"a viewer looking for the rider's doorstep", func(t *testing.T) string {
			// The pickup is 37.95, -122.25 exactly; the map shows the
			// centre of its H3 cell, never the point.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, "ws://"+e.run.Addr+"/v1/ws?token="+e.token("viewer", "v-1"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 22)
			for {
				_, b, err := c.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(b), `"map.snapshot"`) {
					continue
				}
				if strings.Contains(string(b), `"trips":[]`) {
					return "no trip on the map"
				}
				// Positions travel as integers of 1e-5 degrees.
				for _, exact := range []string{",3795000,", ",-12225000,"} {
					if strings.Contains(string(b), exact) {
						return "the exact pickup"
					}
				}
				return "a cell centre"
			}
		}, "a cell centre"},
		{"/metrics on the phones' address", func(t *testing.T) string {
			res, err := http.Get("http://" + e.run.Addr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return fmt.Sprint(res.StatusCode)
		}, "404"},
	}
	// Wait for what the connections above set in motion to be written.
	settled := e.state()
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		now := e.state()
		if len(settled.changes(now)) == 0 {
			break
		}
		settled = now
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if f := setup[c.name]; f != nil {
				f()
			}
			before := e.state()
			if got := c.attack(t); got != c.want {
				t.Errorf("answered %s, want %s", got, c.want)
			}
			// What a refused attack would have written, it writes within
			// this time; a little longer catches a late write.
			time.Sleep(200 * time.Millisecond)
			for _, change := range before.changes(e.state()) {
				t.Error(change)
			}
		})
	}
	if strings.Contains(fmt.Sprint(driver.messages()), "offer") {
		t.Error("the driver was offered a ride at the far end")
	}
}
