package platform

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hexride/hexride/internal/proctest"
)

// TestOutagesTurnIntoUnavailableAndRecover takes the event log and Redis
// away from a running platform in turn (each a process of its own): the
// gateway answers a command unavailable instead of acking it, /readyz turns
// red, and once the dependency is back both recover by themselves and the
// same command (same id) is acked.
func TestOutagesTurnIntoUnavailableAndRecover(t *testing.T) {
	hexride := proctest.Build(t, "github.com/hexride/hexride/cmd/hexride")
	brokerAddr := proctest.FreeAddr(t)
	broker := proctest.Start(t, "broker", hexride, nil, "broker", "-addr", brokerAddr)
	rs := startRedisProc(t)
	waitFor(t, "the broker to listen", 10*time.Second, func() bool { return dialOK(brokerAddr) })

	cfg := testConfig()
	cfg.KafkaBrokers, cfg.RedisAddr = brokerAddr, rs.Addr
	e := startOn(t, cfg, []string{brokerAddr})
	driver := e.connect("driver", "d-1", "")
	driver.mustAck("on", map[string]any{"type": "availability", "available": true})
	ready := func() int {
		res, err := http.Get("http://" + e.run.Addr + "/readyz")
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	waitFor(t, "/readyz to be green", 10*time.Second, func() bool { return ready() == http.StatusOK })

	cases := []struct {
		name       string
		stop, back func()
	}{
		{"broker paused", func() { _ = broker.Signal(syscall.SIGSTOP) }, func() { _ = broker.Signal(syscall.SIGCONT) }},
		{"redis killed", func() { rs.proc.Kill() }, rs.start},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.stop()
			var once sync.Once
			back := func() { once.Do(c.back) }
			defer back() // also when the subtest fails: the next one needs it
			waitFor(t, "/readyz to turn red", 10*time.Second, func() bool { return ready() == http.StatusServiceUnavailable })
			id := "off-" + strconv.Itoa(i)
			cmd := map[string]any{"type": "availability", "available": i%2 == 0}
			if a := driver.command(id, cmd); a["type"] != "error" || a["code"] != "unavailable" {
				t.Fatalf("during the outage: %v, want error unavailable", a)
			}
			back()
			waitFor(t, "/readyz to turn green again", 15*time.Second, func() bool { return ready() == http.StatusOK })
			var last map[string]any
			waitFor(t, "the resent command to be acked", 15*time.Second, func() bool {
				last = driver.command(id, map[string]any{"type": "availability", "available": i%2 == 0})
				return last["type"] == "ack"
			})
		})
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dialOK(addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
