// Package devredis is the development stand-in for Redis: miniredis in this
// process, for the one-command run only (tests use a real redis-server). No
// production binary imports it.
package devredis

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Start serves a Redis-protocol server on a free loopback port until ctx
// ends or stop is called, and returns its address.
func Start(ctx context.Context) (addr string, stop func(), err error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return "", nil, fmt.Errorf("start embedded redis: %w", err)
	}
	// miniredis only expires keys when told time has passed.
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.FastForward(time.Second)
			}
		}
	}()
	return m.Addr(), func() { cancel(); m.Close() }, nil
}
