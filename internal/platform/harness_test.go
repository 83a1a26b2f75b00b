package platform

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/hexride/hexride/gateway"
	"github.com/hexride/hexride/internal/devbroker"
	"github.com/hexride/hexride/internal/redistest"
)

// env is one platform under test: every service, on an embedded kfake broker
// reached over TCP and a real redis-server started for the test.
type env struct {
	t       *testing.T
	run     *Running
	brokers []string
	cfg     Config
	// stop cancels the platform and returns what Run returned (at most
	// 20s later); the test's cleanup calls it too.
	stop func() error
}

func testConfig() Config {
	return Config{Addr: "127.0.0.1:0", KafkaPartitions: 4, OfferTimeout: 10 * time.Second, SearchDeadline: 60 * time.Second,
		StaleAfter: 15 * time.Second, MaxPickupM: 5000, DevAuth: true, LogLevel: "info",
		DispatchPolicy: "greedy", BatchWindow: 2 * time.Second}
}

func startPlatform(t *testing.T, mutate func(*Config), services ...string) *env {
	t.Helper()
	broker, err := devbroker.StartLocal(0, 4, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	rs := redistest.Start(t)
	cfg := testConfig()
	cfg.KafkaBrokers = strings.Join(broker.Addrs(), ",")
	cfg.RedisAddr = rs.Addr
	if mutate != nil {
		mutate(&cfg)
	}
	return startOn(t, cfg, broker.Addrs(), services...)
}

// startOn starts services on an existing broker and Redis (another replica).
func startOn(t *testing.T, cfg Config, brokers []string, services ...string) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	readyCh := make(chan *Running, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() {
		done <- Run(ctx, cfg, log, Options{Services: services, OnReady: func(r *Running) { readyCh <- r }})
	}()
	var run *Running
	select {
	case run = <-readyCh:
	case err := <-done:
		cancel()
		t.Fatalf("platform did not start: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("platform did not start within 20s")
	}
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(20 * time.Second):
				stopErr = errors.New("platform did not stop within 20s of cancel")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("platform stopped with error: %v", err)
		}
	})
	return &env{t: t, run: run, brokers: brokers, cfg: cfg, stop: stop}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if os.Getenv("HEXRIDE_TEST_LOG") != "" {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// phone is a WebSocket client that speaks only protocol.md.
type phone struct {
	t    *testing.T
	user string
	c    *websocket.Conn
	in   chan map[string]any
	raw  chan string
	mu   sync.Mutex
	seen []map[string]any // every message received, in order
	// readErr is why the socket stopped reading; set before in is closed.
	readErr error
}

func (e *env) token(role, sub string) string {
	tok, err := e.run.Tokens.Mint(sub, role, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) connect(role, sub string, query string) *phone {
	e.t.Helper()
	url := "ws://" + e.run.Addr + "/v1/ws"
	if query != "" {
		url += "?" + query
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + e.token(role, sub)}}})
	if err != nil {
		e.t.Fatalf("%s %s: dial: %v", role, sub, err)
	}
	p := &phone{t: e.t, user: sub, c: c, in: make(chan map[string]any, 1024)}
	go func() {
		defer close(p.in)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				p.readErr = err
				return
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				e.t.Errorf("%s got a frame that is not JSON: %q", sub, b)
				return
			}
			p.mu.Lock()
			p.seen = append(p.seen, m)
			p.mu.Unlock()
			p.in <- m
		}
	}()
	e.t.Cleanup(func() { c.Close(websocket.StatusNormalClosure, "") })
	return p
}

func (p *phone) send(msg map[string]any) {
	p.t.Helper()
	b, err := json.Marshal(msg)
	if err != nil {
		p.t.Fatal(err)
	}
	p.sendRaw(string(b))
}

func (p *phone) sendRaw(s string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		p.t.Fatalf("%s: write: %v", p.user, err)
	}
}

// await returns the first message (skipping others) for which match holds.
func (p *phone) await(what string, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-p.in:
			if !ok {
				p.t.Fatalf("%s: socket closed while waiting for %s", p.user, what)
			}
			if match(m) {
				return m
			}
		case <-deadline:
			p.t.Fatalf("%s: no %s within %s; saw %v", p.user, what, timeout, p.messages())
		}
	}
}

func (p *phone) messages() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.seen...)
}

func isType(typ string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["type"] == typ }
}

func answerTo(id string) func(map[string]any) bool {
	return func(m map[string]any) bool { return (m["type"] == "ack" || m["type"] == "error") && m["id"] == id }
}

func tripState(state string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["type"] == "trip" && m["state"] == state }
}

// command sends a command with an id and returns its answer.
func (p *phone) command(id string, msg map[string]any) map[string]any {
	p.t.Helper()
	msg["id"] = id
	p.send(msg)
	return p.await("answer to "+id, 10*time.Second, answerTo(id))
}

func (p *phone) mustAck(id string, msg map[string]any) map[string]any {
	p.t.Helper()
	a := p.command(id, msg)
	if a["type"] != "ack" {
		p.t.Fatalf("%s: %s: want ack, got %v", p.user, id, a)
	}
	return a
}

// pingEvery keeps a driver fresh at pos until the test ends.
func (p *phone) pingEvery(d time.Duration, lat, lng float64) {
	stop := make(chan struct{})
	p.t.Cleanup(func() { close(stop) })
	p.send(map[string]any{"type": "location", "lat": lat, "lng": lng, "heading": 90.0})
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				b, _ := json.Marshal(map[string]any{"type": "location", "lat": lat, "lng": lng, "heading": 90.0})
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				err := p.c.Write(ctx, websocket.MessageText, b)
				cancel()
				if err != nil {
					return
				}
			}
		}
	}()
}

// goOnline makes a driver available at a position, pinging until the test ends.
func (p *phone) goOnline(lat, lng float64) {
	p.t.Helper()
	p.mustAck("online-"+p.user, map[string]any{"type": "availability", "available": true})
	p.pingEvery(300*time.Millisecond, lat, lng)
}

// topicEnd is the total number of events ever written to topic.
func (e *env) topicEnd(topic string) int64 {
	e.t.Helper()
	client := &kafkago.Client{Addr: kafkago.TCP(e.brokers...), Timeout: 5 * time.Second}
	var reqs []kafkago.OffsetRequest
	for p := 0; p < 4; p++ {
		reqs = append(reqs, kafkago.LastOffsetOf(p))
	}
	res, err := client.ListOffsets(context.Background(), &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		e.t.Fatalf("list offsets of %s: %v", topic, err)
	}
	var n int64
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			e.t.Fatalf("offsets of %s/%d: %v", topic, po.Partition, po.Error)
		}
		n += po.LastOffset
	}
	return n
}

func num(m map[string]any, k string) int64 {
	f, _ := m[k].(float64)
	return int64(f)
}

// NewTokensForTest builds a token authority with another secret.
func NewTokensForTest(secret string) *gateway.Tokens {
	t, err := gateway.NewTokens(secret)
	if err != nil {
		panic(err)
	}
	return t
}
