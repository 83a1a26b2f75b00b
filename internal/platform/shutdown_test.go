package platform

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/internal/redistest"
)

// TestShutdownWithSilentClients stops a platform that holds a TCP connection
// that never sent a request (net/http's Shutdown waits five seconds for
// those) and a socket whose phone never answers the close frame: Run must
// return nil, and promptly.
func TestShutdownWithSilentClients(t *testing.T) {
	broker, err := ev.StartEmbeddedBroker(0, 4, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	cfg := testConfig()
	cfg.KafkaBrokers = strings.Join(broker.Addrs(), ",")
	cfg.RedisAddr = redistest.Start(t).Addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan *Running, 1)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() {
		done <- Run(ctx, cfg, log, Options{OnReady: func(r *Running) { ready <- r }})
	}()
	var run *Running
	select {
	case run = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("platform did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("platform did not start within 30s")
	}
	spare, err := net.Dial("tcp", run.Addr) // a client's spare connection
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer spare.Close()
	e := &env{t: t, run: run, cfg: cfg}
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	silent, _, err := websocket.Dial(dctx, "ws://"+run.Addr+"/v1/ws?token="+e.token("driver", "silent"), nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer silent.CloseNow() // never read: the 1001 goes unanswered

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after %s; want a clean stop", err, time.Since(start).Round(time.Millisecond))
		}
	case <-time.After(15 * time.Second):
		t.Fatal("platform did not stop within 15s")
	}
	if took := time.Since(start); took > 4500*time.Millisecond {
		t.Fatalf("stopping took %s; want well under the 5s shutdown budget", took)
	}
}
