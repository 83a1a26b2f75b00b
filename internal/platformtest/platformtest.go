// Package platformtest runs a whole platform in a test's process: started
// in the background, waited for until it listens, and stopped (and waited
// for) when the test ends. Tests outside internal/platform use it.
package platformtest

import (
	"context"
	"testing"
	"time"

	"github.com/hexride/hexride/internal/platform"
)

// Start runs start (platform.Run or platform.Demo, with the OnReady it is
// given put in its Options) until the test ends, and returns the running
// platform once it listens. A platform that fails to start or stop fails
// the test.
func Start(t testing.TB, start func(ctx context.Context, onReady func(*platform.Running)) error) *platform.Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *platform.Running, 1)
	done := make(chan error, 1)
	go func() { done <- start(ctx, func(r *platform.Running) { ready <- r }) }()
	var run *platform.Running
	select {
	case run = <-ready:
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
	return run
}
