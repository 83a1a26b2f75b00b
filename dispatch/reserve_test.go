package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/hexride/hexride/internal/redistest"
)

// TestReservationRefusesADriverOnATrip: a driver tripstate has claimed is on
// a trip and is never reserved, even by a replica that never saw the
// acceptance (one restarted, or taking over); others are reserved once.
func TestReservationRefusesADriverOnATrip(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	claim := func(id string) string { return "claim:" + id }
	r := RedisReservations{RDB: rdb, ClaimKey: claim}
	if err := rdb.Set(ctx, claim("busy"), "t-other r-1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		driver, trip string
		want         bool
	}{
		{"busy", "t1", false},
		{"free", "t1", true},
		{"free", "t1", true}, // ours already
		{"free", "t2", false},
	}
	for _, c := range cases {
		got, err := r.Reserve(ctx, c.driver, c.trip, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("Reserve(%s, %s) = %v, want %v", c.driver, c.trip, got, c.want)
		}
	}
	if ttl := rdb.PTTL(ctx, reservationKey("free")).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("reservation ttl %s, want up to a minute", ttl)
	}
	if err := rdb.Del(ctx, claim("busy")).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.Reserve(ctx, "busy", "t3", time.Minute); err != nil || !ok {
		t.Errorf("a driver whose trip ended: Reserve = %v, %v; want true", ok, err)
	}
}
