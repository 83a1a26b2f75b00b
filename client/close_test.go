package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hexride/hexride/client"
	"github.com/hexride/hexride/protocol"
)

// fakeGateway accepts sockets and lets each test decide what each one
// does; the real gateway closes with 4001 only 30 s after a token expires,
// too slow for a unit test, and never on cue with the others.
type fakeGateway struct {
	mu        sync.Mutex
	handshake []*http.Request
	// serve runs each accepted socket (n from 1); nil just reads.
	serve func(n int, c *websocket.Conn)
	// refuse, if set, may answer a handshake itself (true: refused).
	refuse func(n int, w http.ResponseWriter, r *http.Request) bool
}

func (f *fakeGateway) start(t *testing.T) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.handshake = append(f.handshake, r)
		n := len(f.handshake)
		f.mu.Unlock()
		if f.refuse != nil && f.refuse(n, w, r) {
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		if f.serve != nil {
			f.serve(n, c)
			return
		}
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}))
	t.Cleanup(s.Close)
	return s.URL // http://: the client makes it ws:// and adds /v1/ws
}

func (f *fakeGateway) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.handshake...)
}

func waitDone(t *testing.T, c *client.Client) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not stop")
	}
}

// TestTokenExpiredAsksForAFreshOne: 4001 makes the client call Options.Token
// and reconnect with that token, resuming.
func TestTokenExpiredAsksForAFreshOne(t *testing.T) {
	f := &fakeGateway{}
	connected := make(chan struct{}, 4)
	f.serve = func(n int, c *websocket.Conn) {
		if n == 1 {
			c.Write(context.Background(), websocket.MessageText, []byte(`{"type":"trip","seq":7,"trip_id":"t-1","state":"REQUESTED"}`))
			time.Sleep(50 * time.Millisecond)
			c.Close(protocol.CloseTokenExpired, "token expired")
			return
		}
		connected <- struct{}{}
		c.Read(context.Background())
	}
	url := f.start(t)
	var asked atomic.Int32
	c, err := client.Dial(ctx(t), url, "old", client.Options{MinBackoff: time.Millisecond,
		Token: func(context.Context) (string, error) { asked.Add(1); return "fresh", nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := <-c.Pushes(); p.Seq != 7 || p.Trip == nil || p.Trip.State != protocol.StateRequested {
		t.Fatalf("first push %+v", p)
	}
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnect after 4001")
	}
	reqs := f.requests()
	if got := reqs[1].Header.Get("Authorization"); got != "Bearer fresh" || asked.Load() != 1 {
		t.Fatalf("reconnected with %q after %d token calls, want the fresh token after one", got, asked.Load())
	}
	if got := reqs[1].URL.Query().Get("after_seq"); got != "7" {
		t.Fatalf("reconnected with after_seq=%q, want 7", got)
	}
	if reqs[0].URL.Path != "/v1/ws" || reqs[0].URL.Query().Has("after_seq") {
		t.Fatalf("first handshake %s, want /v1/ws live", reqs[0].URL)
	}
}

// TestTokenExpiredWithoutCallbackStops: 4001 and no Options.Token ends the
// client with ErrTokenExpired.
func TestTokenExpiredWithoutCallbackStops(t *testing.T) {
	f := &fakeGateway{serve: func(n int, c *websocket.Conn) { c.Close(protocol.CloseTokenExpired, "token expired") }}
	c, err := client.Dial(ctx(t), f.start(t), "tok", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, c)
	if !errors.Is(c.Err(), client.ErrTokenExpired) {
		t.Fatalf("Err %v, want ErrTokenExpired", c.Err())
	}
}

// TestReplacedStops: 4008 ends the client with ErrReplaced, no reconnect,
// and a waiting command hears why.
func TestReplacedStops(t *testing.T) {
	f := &fakeGateway{serve: func(n int, c *websocket.Conn) {
		c.Read(context.Background()) // the command, never answered
		c.Close(protocol.CloseReplaced, "replaced by a newer connection")
	}}
	c, err := client.Dial(ctx(t), f.start(t), "tok", client.Options{MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.SetAvailable(ctx(t), true)
	if !errors.Is(err, client.ErrReplaced) {
		t.Fatalf("SetAvailable: %v, want ErrReplaced", err)
	}
	waitDone(t, c)
	if _, ok := <-c.Pushes(); ok {
		t.Fatal("Pushes still open")
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(f.requests()); n != 1 {
		t.Fatalf("%d handshakes after 4008, want no reconnect", n)
	}
}

// TestPolicyCloseBacksOff: after 1008 the client waits at least
// PolicyBackoff; after 1013 (and a cut) at once.
func TestPolicyCloseBacksOff(t *testing.T) {
	for _, tc := range []struct {
		status   websocket.StatusCode
		atLeast  time.Duration
		atMost   time.Duration
		policyBO time.Duration
	}{
		{protocol.ClosePolicyViolation, 400 * time.Millisecond, 5 * time.Second, 400 * time.Millisecond},
		{protocol.CloseTryAgainLater, 0, 300 * time.Millisecond, 5 * time.Second},
		{protocol.CloseGoingAway, 0, 300 * time.Millisecond, 5 * time.Second},
	} {
		var closedAt atomic.Int64
		again := make(chan time.Time, 1)
		f := &fakeGateway{serve: func(n int, c *websocket.Conn) {
			if n == 1 {
				closedAt.Store(time.Now().UnixNano())
				c.Close(tc.status, "")
				return
			}
			again <- time.Now()
			c.Read(context.Background())
		}}
		c, err := client.Dial(ctx(t), f.start(t), "tok", client.Options{MinBackoff: 10 * time.Millisecond, PolicyBackoff: tc.policyBO})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case at := <-again:
			if d := at.Sub(time.Unix(0, closedAt.Load())); d < tc.atLeast || d > tc.atMost {
				t.Errorf("close %d: reconnected after %s, want %s to %s", tc.status, d, tc.atLeast, tc.atMost)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("close %d: no reconnect", tc.status)
		}
		c.Close()
	}
}

// TestRateLimitedHandshakeWaitsRetryAfter: a 429 reconnect waits its
// Retry-After.
func TestRateLimitedHandshakeWaitsRetryAfter(t *testing.T) {
	again := make(chan struct{}, 1)
	var refusedAt atomic.Int64
	f := &fakeGateway{}
	f.refuse = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n == 2 {
			refusedAt.Store(time.Now().UnixNano())
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"error":"rate_limited","message":"wait"}`))
			return true
		}
		return false
	}
	f.serve = func(n int, c *websocket.Conn) {
		if n == 1 {
			c.Close(protocol.CloseTryAgainLater, "")
			return
		}
		again <- struct{}{}
		c.Read(context.Background())
	}
	c, err := client.Dial(ctx(t), f.start(t), "tok", client.Options{MinBackoff: time.Millisecond, PolicyBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-again:
		if d := time.Since(time.Unix(0, refusedAt.Load())); d < 900*time.Millisecond {
			t.Fatalf("reconnected %s after a 429 with Retry-After 1", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnect")
	}
}

// TestDialRefused: a refused first handshake is Dial's error, typed.
func TestDialRefused(t *testing.T) {
	f := &fakeGateway{refuse: func(n int, w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"unauthorized","message":"token expired"}`))
		return true
	}}
	_, err := client.Dial(ctx(t), f.start(t), "tok", client.Options{})
	var e *client.Error
	if !errors.Is(err, client.ErrUnauthorized) || !errors.As(err, &e) || e.Message != "token expired" {
		t.Fatalf("Dial: %v, want unauthorized: token expired", err)
	}
}

// TestUnavailableIsResent: `unavailable` is retried with the same id, and
// the ack that follows is the answer.
func TestUnavailableIsResent(t *testing.T) {
	ids := make(chan string, 8)
	f := &fakeGateway{serve: func(n int, c *websocket.Conn) {
		for i := 0; ; i++ {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			id := frameID(b)
			ids <- id
			answer := `{"type":"error","id":"` + id + `","code":"unavailable","message":"broker away"}`
			if i == 2 {
				answer = `{"type":"ack","id":"` + id + `"}`
			}
			c.Write(context.Background(), websocket.MessageText, []byte(answer))
		}
	}}
	c, err := client.Dial(ctx(t), f.start(t), "tok", client.Options{MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := c.SetAvailable(ctx(t), true)
	if err != nil || a.Type != protocol.MsgAck {
		t.Fatalf("SetAvailable: %+v %v", a, err)
	}
	first := <-ids
	if first == "" || <-ids != first || <-ids != first {
		t.Fatal("the resends did not carry the first attempt's id")
	}
	// Spent attempts return the last unavailable.
	c2, err := client.Dial(ctx(t), f.start(t), "tok", client.Options{MinBackoff: time.Millisecond, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.SetAvailable(ctx(t), true); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("2 attempts on a gateway that answers unavailable twice: %v", err)
	}
}

func frameID(b []byte) string {
	var f protocol.Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return ""
	}
	return f.ID
}

// TestCloseAndCancel: a call's ctx ends only that call; Close ends every
// waiting call with ErrClosed, closes Pushes and says goodbye with 1000.
func TestCloseAndCancel(t *testing.T) {
	status := make(chan websocket.StatusCode, 1)
	f := &fakeGateway{serve: func(n int, c *websocket.Conn) {
		for { // never answers
			if _, _, err := c.Read(context.Background()); err != nil {
				status <- websocket.CloseStatus(err)
				return
			}
		}
	}}
	c, err := client.Dial(ctx(t), f.start(t), "tok", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Arrive(short, "t-1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Arrive with an ended ctx: %v", err)
	}
	waiting := make(chan error, 1)
	go func() { _, err := c.Start(context.Background(), "t-1"); waiting <- err }()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	if err := <-waiting; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("a waiting Start after Close: %v", err)
	}
	if _, ok := <-c.Pushes(); ok {
		t.Fatal("Pushes still open after Close")
	}
	if s := <-status; s != websocket.StatusNormalClosure {
		t.Fatalf("the gateway saw close %d, want 1000", s)
	}
	if _, err := c.Complete(context.Background(), "t-1"); !errors.Is(err, client.ErrClosed) || !errors.Is(c.Err(), client.ErrClosed) {
		t.Fatalf("after Close: %v, Err %v", err, c.Err())
	}
}
