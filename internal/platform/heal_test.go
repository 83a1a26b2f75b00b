package platform

import (
	"context"
	"testing"
	"time"
)

// TestSocketWithLostPresenceIsHealed: a socket whose presence entry is gone
// (Redis restarted without it, or was away when the phone connected) would
// hear nothing, since pushes are routed by presence. The gateway records it
// again and fills what the socket missed within seconds, with no later
// push needed to reveal the gap.
func TestSocketWithLostPresenceIsHealed(t *testing.T) {
	e := startPlatform(t, nil)
	rider := e.connect("rider", "r-heal", "")
	ctx := context.Background()
	// What a Redis restart that lost the entry leaves behind.
	if err := e.run.Redis.Del(ctx, "presence:r-heal").Err(); err != nil {
		t.Fatal(err)
	}
	requestRide(t, rider, "req")
	rider.await("the REQUESTED push", 6*time.Second, tripState("REQUESTED"))
	if n, err := e.run.Redis.SCard(ctx, "presence:r-heal").Result(); err != nil || n != 1 {
		t.Fatalf("presence of r-heal: %d members (%v), want this gateway again", n, err)
	}
}
