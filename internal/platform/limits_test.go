package platform

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hexride/hexride/gateway"
)

// dial opens a socket and returns the handshake's answer, whatever it was.
func (e *env) dial(role, sub string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+e.run.Addr+"/v1/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + e.token(role, sub)}}})
	if c != nil {
		e.t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

// closedWith waits for p's socket to be closed and returns its status.
func closedWith(t *testing.T, p *phone, within time.Duration) websocket.StatusCode {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case _, ok := <-p.in:
			if !ok {
				return websocket.CloseStatus(p.readErr)
			}
		case <-deadline:
			t.Fatalf("%s: socket still open after %s", p.user, within)
		}
	}
}

// TestUserBudgetHoldsAcrossSocketsAndReplicas: one driver on four sockets,
// two on each of two gateways, sends commands as fast as it can; together
// they get no more acks than the user's one budget allows.
func TestUserBudgetHoldsAcrossSocketsAndReplicas(t *testing.T) {
	const burst, rate = 10, 1.0
	a := startPlatform(t, func(c *Config) {
		c.Limits = gateway.Limits{CommandRate: rate, CommandBurst: burst}
	}, Gateway, Dispatcher, Tripstate)
	b := startOn(t, a.cfg, a.brokers, Gateway)

	phones := []*phone{a.connect("driver", "d-greedy", ""), a.connect("driver", "d-greedy", ""),
		b.connect("driver", "d-greedy", ""), b.connect("driver", "d-greedy", "")}
	const each = 10
	start := time.Now()
	var wg sync.WaitGroup
	for i, p := range phones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				p.send(map[string]any{"type": "availability", "available": j%2 == 0, "id": fmt.Sprintf("av-%d-%d", i, j)})
			}
		}()
	}
	wg.Wait()
	acks, limited := 0, 0
	for i, p := range phones {
		for j := range each {
			id := fmt.Sprintf("av-%d-%d", i, j)
			ans := p.await("answer to "+id, 10*time.Second, answerTo(id))
			switch {
			case ans["type"] == "ack":
				acks++
			case ans["code"] == "rate_limited":
				limited++
			default:
				t.Fatalf("%s: %v", id, ans)
			}
		}
	}
	elapsed := time.Since(start)
	budget := burst + int(rate*elapsed.Seconds()) + 1
	t.Logf("%d acks, %d rate_limited in %s (budget %d)", acks, limited, elapsed, budget)
	if acks > budget || acks < burst {
		t.Fatalf("%d of %d commands acked in %s; the user's budget is %d", acks, len(phones)*each, elapsed, budget)
	}
	// Another user is not held back by d-greedy's spent budget.
	other := b.connect("driver", "d-other", "")
	other.mustAck("fine", map[string]any{"type": "availability", "available": true})
	// Nor is the same sub as a rider: another user.
	rider := a.connect("rider", "d-greedy", "")
	requestRide(t, rider, "req")
}

// TestNewestSocketWinsAcrossReplicas: with one socket per user, a user's
// newer socket on another gateway closes the older one with 4008, and the
// newer one works.
func TestNewestSocketWinsAcrossReplicas(t *testing.T) {
	a := startPlatform(t, func(c *Config) { c.MaxSocketsPerUser = 1 }, Gateway, Dispatcher, Tripstate)
	b := startOn(t, a.cfg, a.brokers, Gateway)

	first := a.connect("rider", "r-1", "")
	second := b.connect("rider", "r-1", "")
	if st := closedWith(t, first, 10*time.Second); st != gateway.StatusReplaced {
		t.Fatalf("older socket closed with %d (%v), want %d", st, first.readErr, gateway.StatusReplaced)
	}
	tripID := requestRide(t, second, "req")
	second.await("REQUESTED", 10*time.Second, tripState("REQUESTED")) // tripstate has the trip: it can be cancelled
	// The driver with the same sub is another user: it replaces no one.
	driver := b.connect("driver", "r-1", "")
	third := a.connect("rider", "r-1", "")
	if st := closedWith(t, second, 10*time.Second); st != gateway.StatusReplaced {
		t.Fatalf("second socket closed with %d (%v), want %d", st, second.readErr, gateway.StatusReplaced)
	}
	driver.mustAck("on", map[string]any{"type": "availability", "available": true})
	third.mustAck("cancel", map[string]any{"type": "trip.cancel", "trip_id": tripID})
	third.await("CANCELLED", 10*time.Second, tripState("CANCELLED"))
}

// TestPerIPSocketCapIs429: past the per-IP cap the handshake is refused
// with 429, and a socket that ends frees its place.
func TestPerIPSocketCapIs429(t *testing.T) {
	e := startPlatform(t, func(c *Config) { c.MaxSocketsPerIP = 2 }, Gateway)
	p1 := e.connect("driver", "d-1", "")
	e.connect("rider", "r-1", "")
	_, resp, err := e.dial("rider", "r-2")
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third socket from one IP: %v (response %v), want 429", err, resp)
	}
	p1.c.Close(websocket.StatusNormalClosure, "bye")
	waitFor(t, "a freed place", 5*time.Second, func() bool {
		c, _, err := e.dial("rider", "r-2")
		if c != nil {
			defer c.CloseNow()
		}
		return err == nil
	})
}

// TestReconnectAfterAbuseIs429: a socket closed for flooding (1008) cannot
// come straight back: its user's handshakes get 429 with Retry-After for a
// while; other users from the same address are not held back.
func TestReconnectAfterAbuseIs429(t *testing.T) {
	e := startPlatform(t, nil, Gateway)
	flood := e.connect("driver", "d-flood", "")
	go func() {
		for range 500 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := flood.c.Write(ctx, websocket.MessageText, []byte(`{"type":"location","lat":37.77,"lng":-122.42}`))
			cancel()
			if err != nil {
				return
			}
		}
	}()
	if st := closedWith(t, flood, 10*time.Second); st != websocket.StatusPolicyViolation {
		t.Fatalf("flooding socket closed with %d (%v), want 1008", st, flood.readErr)
	}
	var resp *http.Response
	waitFor(t, "a refused reconnect", 5*time.Second, func() bool {
		var c *websocket.Conn
		c, resp, _ = e.dial("driver", "d-flood")
		if c != nil {
			c.CloseNow()
		}
		return resp != nil && resp.StatusCode == http.StatusTooManyRequests
	})
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > int(gateway.DefaultBackoffBase/time.Second) {
		t.Fatalf("Retry-After %q, want 1 to %d seconds", resp.Header.Get("Retry-After"), int(gateway.DefaultBackoffBase/time.Second))
	}
	e.connect("driver", "d-calm", "")
	e.connect("rider", "d-flood", "") // the same sub as a rider is another user
}

// TestFloodGettingSomeThroughIsStillClosed: a socket sending three times
// its rate, so that some of its frames pass as its budget refills, is
// closed for abuse all the same: refusals count over a window, not in a
// row (loadtest -flood user found such a socket sending 12,000 frames a
// second for 20 s, never closed).
func TestFloodGettingSomeThroughIsStillClosed(t *testing.T) {
	e := startPlatform(t, nil, Gateway)
	flood := e.connect("driver", "d-steady", "")
	go func() {
		tick := time.NewTicker(time.Second / 60) // 60/s against a limit of 20/s
		defer tick.Stop()
		for range 60 * 8 {
			<-tick.C
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := flood.c.Write(ctx, websocket.MessageText, []byte(`{"type":"location","lat":37.77,"lng":-122.42}`))
			cancel()
			if err != nil {
				return
			}
		}
	}()
	if st := closedWith(t, flood, 10*time.Second); st != websocket.StatusPolicyViolation {
		t.Fatalf("a socket at three times its rate closed with %d (%v), want 1008", st, flood.readErr)
	}
}
