package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hexride/hexride/internal/devbroker"
	"github.com/hexride/hexride/internal/devredis"
	"github.com/hexride/hexride/internal/platform"
	"github.com/hexride/hexride/internal/platformtest"
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
	p := platformtest.Start(t, func(ctx context.Context, onReady func(*platform.Running)) error {
		return platform.Demo(ctx, nil, func(k string) string { return env[k] }, os.Stderr, platform.Options{
			DevBroker: devbroker.ForPlatform, DevRedis: devredis.Start, OnReady: onReady})
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
