package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hexride/hexride/gateway"
	"github.com/hexride/hexride/internal/proctest"
)

// TestDemoCompletesARide runs the one-command platform exactly as
// `go run ./cmd/hexride` does (embedded broker and Redis, development auth),
// finds its address in what it prints, mints tokens the way the banner says,
// and completes a ride with a client that knows only protocol.md.
func TestDemoCompletesARide(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &proctest.SyncBuffer{}
	done := make(chan error, 1)
	env := map[string]string{"HEXRIDE_ADDR": "127.0.0.1:0", "HEXRIDE_LOG_LEVEL": "warn",
		"HEXRIDE_DEV_SECRET_FILE": filepath.Join(t.TempDir(), "dev-secret")}
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, out, io.Discard) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hexride stopped with %v", err)
		}
	}()
	addrRE := regexp.MustCompile(`running on http://(\S+)`)
	var base string
	for start := time.Now(); base == ""; time.Sleep(20 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
		} else if time.Since(start) > 10*time.Second {
			t.Fatalf("no address printed within 10s; output: %s", out.String())
		}
	}
	if !strings.Contains(out.String(), "/v1/dev/token") {
		t.Fatalf("banner does not say how to mint a token: %s", out.String())
	}

	driver := dial(t, base, "driver", "demo-driver")
	rider := dial(t, base, "rider", "demo-rider")

	// `hexride token`, offline, signs with the secret this start drew; a
	// token signed with the constant the demo once used is refused.
	var tok bytes.Buffer
	if err := run(ctx, []string{"token", "-role", "rider", "-sub", "cli-rider"}, func(k string) string { return env[k] }, &tok, io.Discard); err != nil {
		t.Fatalf("hexride token: %v", err)
	}
	old, err := gateway.NewTokens("hexride-development-secret-do-not-use-in-production")
	if err != nil {
		t.Fatal(err)
	}
	forged, err := old.Mint("forger", "rider", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, token string
		want        int
	}{{"hexride token", strings.TrimSpace(tok.String()), http.StatusSwitchingProtocols}, {"the old constant", forged, http.StatusUnauthorized}} {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		conn, res, err := websocket.Dial(dctx, "ws://"+base+"/v1/ws?token="+c.token, nil)
		dcancel()
		if res == nil || res.StatusCode != c.want {
			t.Errorf("a token from %s: %v (%v), want HTTP %d", c.name, res, err, c.want)
		}
		if conn != nil {
			conn.CloseNow()
		}
	}
	driver.cmd(t, map[string]any{"type": "availability", "available": true, "id": "on"})
	driver.send(t, map[string]any{"type": "location", "lat": 40.7128, "lng": -74.0060})
	ack := rider.cmd(t, map[string]any{"type": "ride.request", "id": "r1",
		"pickup": map[string]any{"lat": 40.7130, "lng": -74.0050}, "dropoff": map[string]any{"lat": 40.7300, "lng": -73.9900}})
	trip := ack["trip_id"]
	offer := driver.until(t, func(m map[string]any) bool { return m["type"] == "offer" })
	driver.cmd(t, map[string]any{"type": "offer.accept", "id": "a", "offer_id": offer["offer_id"], "trip_id": trip})
	// The outcome of each command arrives as a trip push; wait for it
	// before the next step, as protocol.md tells clients to.
	for _, step := range []struct{ cmd, state string }{{"offer.accept", "ACCEPTED"}, {"trip.arrive", "ARRIVED"},
		{"trip.start", "IN_PROGRESS"}, {"trip.complete", "COMPLETED"}} {
		if step.cmd != "offer.accept" {
			driver.cmd(t, map[string]any{"type": step.cmd, "id": step.cmd, "trip_id": trip})
		}
		driver.until(t, func(m map[string]any) bool { return m["type"] == "trip" && m["state"] == step.state })
	}
	rider.until(t, func(m map[string]any) bool { return m["type"] == "trip" && m["state"] == "COMPLETED" })
}

type client struct {
	c  *websocket.Conn
	rd *bufio.Reader
	// held are frames read while waiting for another: a step's trip push
	// can arrive before the ack of the command that caused it.
	held []map[string]any
}

func dial(t *testing.T, base, role, sub string) *client {
	t.Helper()
	res, err := http.Post("http://"+base+"/v1/dev/token", "application/json",
		strings.NewReader(`{"role":"`+role+`","sub":"`+sub+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || tok.Token == "" {
		t.Fatalf("dev token: %v %+v", err, tok)
	}
	res.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+base+"/v1/ws?token="+tok.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(websocket.StatusNormalClosure, "") })
	return &client{c: c}
}

func (c *client) send(t *testing.T, m map[string]any) {
	t.Helper()
	b, _ := json.Marshal(m)
	if err := c.c.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

func (c *client) until(t *testing.T, match func(map[string]any) bool) map[string]any {
	t.Helper()
	for i, m := range c.held {
		if match(m) {
			c.held = append(c.held[:i], c.held[i+1:]...)
			return m
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var seen []string
	for {
		_, b, err := c.c.Read(ctx)
		seen = append(seen, string(b))
		if err != nil {
			t.Fatalf("read: %v; frames before it: %s", err, seen)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("frame %q: %v", b, err)
		}
		if match(m) {
			return m
		}
		c.held = append(c.held, m)
	}
}

// cmd sends a command and fails unless it is acked.
func (c *client) cmd(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	c.send(t, m)
	a := c.until(t, func(r map[string]any) bool { return r["id"] == m["id"] && (r["type"] == "ack" || r["type"] == "error") })
	if a["type"] != "ack" {
		t.Fatalf("%v answered %v", m, a)
	}
	return a
}

func TestTokenCommandMintsAVerifiableToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "dev-secret")
	env := map[string]string{"HEXRIDE_DEV_SECRET_FILE": file}
	getenv := func(k string) string { return env[k] }
	token := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"token"}, args...), getenv, &out, io.Discard)
		return strings.TrimSpace(out.String()), err
	}
	if _, err := token("-role", "driver", "-sub", "d-42"); err == nil || !strings.Contains(err.Error(), "start hexride first") {
		t.Fatalf("with no platform started and no secret: %v, want a clear error", err)
	}
	if err := os.WriteFile(file, []byte("drawn-at-start\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := token("-role", "driver", "-sub", "d-42")
	if err != nil {
		t.Fatal(err)
	}
	want, err := gateway.NewTokens("drawn-at-start")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := want.Verify(tok); err != nil || c.Subject != "d-42" || c.Role != "driver" {
		t.Fatalf("the token does not verify with the kept secret: %+v, %v", c, err)
	}
	env["HEXRIDE_JWT_SECRET"] = "configured"
	tok, err = token("-role", "rider", "-sub", "r-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := want.Verify(tok); err == nil {
		t.Fatal("HEXRIDE_JWT_SECRET was not used over the kept secret")
	}
	for _, bad := range [][]string{{"-role", "pilot", "-sub", "x"}, {"-role", "rider", "-sub", "x", "-ttl", "48h"}} {
		if _, err := token(bad...); err == nil {
			t.Errorf("token %v was accepted", bad)
		}
	}
}

func TestBadSettingIsAClearError(t *testing.T) {
	cases := []struct{ env, value, policy string }{
		{"HEXRIDE_OFFER_TIMEOUT", "soon", ""},
		{"KAFKA_RETENTION", "10s", ""}, // shorter than a consumer may lag
		{"HEXRIDE_DISPATCH_POLICY", "hungarian", ""},
		{"HEXRIDE_BATCH_WINDOW", "1m", "batch"}, // longer than the offer timeout
		{"HEXRIDE_BATCH_WINDOW", "often", ""},
	}
	for _, tc := range cases {
		t.Run(tc.env+"="+tc.value, func(t *testing.T) {
			err := run(context.Background(), nil, func(k string) string {
				if k == "HEXRIDE_DISPATCH_POLICY" && tc.policy != "" {
					return tc.policy
				}
				return map[string]string{tc.env: tc.value}[k]
			}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.env) {
				t.Fatalf("got %v, want an error naming %s", err, tc.env)
			}
		})
	}
}

// TestLoadtestCommand: `hexride loadtest` is the load test's command line,
// with its exit statuses: a target off this machine is refused with 2.
func TestLoadtestCommand(t *testing.T) {
	var stderr strings.Builder
	err := run(t.Context(), []string{"loadtest", "-target", "http://10.1.2.3:8080"}, func(string) string { return "" }, io.Discard, &stderr)
	var status exitStatus
	if !errors.As(err, &status) || status != 2 {
		t.Fatalf("got %v, want exit status 2", err)
	}
	if msg := stderr.String(); !strings.Contains(msg, "hexride loadtest:") || !strings.Contains(msg, "not a loopback") {
		t.Errorf("message: %q", msg)
	}
	stderr.Reset()
	if err := run(t.Context(), []string{"loadtest", "-h"}, func(string) string { return "" }, io.Discard, &stderr); err != nil || !strings.Contains(stderr.String(), "-drivers") {
		t.Errorf("-h: %v, usage %q", err, stderr.String())
	}
}

// TestStrayArgumentIsAnError: a word the command does not know (a mistyped
// subcommand) is refused before anything starts, not ignored.
func TestStrayArgumentIsAnError(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := run(ctx, []string{"lodtest", "-drivers", "10"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `unexpected argument "lodtest"`) {
		t.Fatalf("got %v, want an error naming the argument", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the platform ran until the deadline")
	}
}
