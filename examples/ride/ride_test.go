package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hexride/hexride/internal/devbroker"
	"github.com/hexride/hexride/internal/devredis"
	"github.com/hexride/hexride/internal/platform"
)

// TestRideAgainstTheOneCommandPlatform starts what `go run ./cmd/hexride`
// starts (embedded broker and Redis, development auth), without the
// simulated city, and runs the example against it, so CI keeps it working.
func TestRideAgainstTheOneCommandPlatform(t *testing.T) {
	env := map[string]string{
		"HEXRIDE_ADDR":            "127.0.0.1:0",
		"HEXRIDE_DEMO_CITY":       "false",
		"HEXRIDE_LOG_LEVEL":       "warn",
		"HEXRIDE_DEV_SECRET_FILE": filepath.Join(t.TempDir(), "dev-secret"),
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *platform.Running, 1)
	done := make(chan error, 1)
	go func() {
		done <- platform.Demo(ctx, nil, func(k string) string { return env[k] }, os.Stderr, platform.Options{
			DevBroker: devbroker.ForPlatform, DevRedis: devredis.Start,
			OnReady: func(r *platform.Running) { ready <- r }})
	}()
	var p *platform.Running
	select {
	case p = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("platform did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("platform did not start within 30s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("platform stopped with error: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("platform did not stop within 20s")
		}
	})

	var out, errs bytes.Buffer
	if err := run(context.Background(), []string{"-url", "http://" + p.Addr}, &out, &errs); err != nil {
		t.Fatalf("ride: %v\n%s%s", err, out.String(), errs.String())
	}
	t.Log("\n" + out.String())
	for _, want := range []string{"driver got offer", "both phones see ACCEPTED", "both phones see COMPLETED", "completed"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}
