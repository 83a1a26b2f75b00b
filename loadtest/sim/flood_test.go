package sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/hexride/hexride/internal/platform"
	"github.com/hexride/hexride/loadtest/sim"
)

// TestFloodsStayWithinTheirLimits runs each flood briefly against a whole
// platform with a per-IP limit: the riders keep getting acks, and the
// flood gets no more than its limits allow.
func TestFloodsStayWithinTheirLimits(t *testing.T) {
	const perIP = 30
	target := startPlatformWith(t, func(c *platform.Config) { c.MaxSocketsPerIP = perIP })
	const d = 3 * time.Second
	for _, tc := range []struct {
		kind  string
		check func(t *testing.T, r *sim.FloodReport)
	}{
		{sim.FloodUser, func(t *testing.T, r *sim.FloodReport) {
			// Eight sockets of one user share one budget: 40 at once
			// and 20 a second.
			if budget := 40 + 20*int(d.Seconds()); r.FloodAcked > budget {
				t.Errorf("the flooding user got %d commands acked, over its budget of %d", r.FloodAcked, budget)
			}
			if r.Refused["rate_limited"] == 0 {
				t.Errorf("no rate_limited answers: %v", r.Refused)
			}
		}},
		{sim.FloodSockets, func(t *testing.T, r *sim.FloodReport) {
			if r.FloodSockets > perIP || r.Refused["http_429"] == 0 {
				t.Errorf("%d sockets open from one IP (limit %d), refusals %v", r.FloodSockets, perIP, r.Refused)
			}
		}},
		{sim.FloodReconnect, func(t *testing.T, r *sim.FloodReport) {
			if r.Refused["close_1008"] == 0 || r.Refused["http_429"] == 0 {
				t.Errorf("a user reconnecting after its abuse closes was not held off: %v", r.Refused)
			}
		}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			// Each flood from an address of its own: an IP closed for abuse
			// three times is held off, and that is the next flood's.
			addr := map[string]string{sim.FloodUser: "127.0.0.2", sim.FloodSockets: "127.0.0.3", sim.FloodReconnect: "127.0.0.4"}[tc.kind]
			r, err := sim.Flood(context.Background(), sim.FloodConfig{Target: target, Kind: tc.kind, Riders: 3, Duration: d, FloodAddr: addr,
				Sockets: 2 * perIP * map[bool]int{true: 1, false: 0}[tc.kind == sim.FloodSockets]})
			if err != nil {
				t.Fatal(err)
			}
			if r.Acks == 0 || len(r.RiderError) > 0 {
				t.Errorf("riders got %d acks and errors %v during the flood", r.Acks, r.RiderError)
			}
			tc.check(t, r)
		})
	}
}
