package platform

import (
	"strings"
	"testing"
	"time"

	"github.com/hexride/hexride/internal/proctest"
)

// TestDispatcherRestartedUnderItsOwnIDMatchesAgain kills the dispatcher, an
// OS process of its own, mid-run and starts it again under the same replica
// id, as a deploy or a crash loop does. Before it was killed it had read
// every driver's availability and an acceptance; a request made while it
// was down must be offered within 5 s of the restart, to a driver who is
// available, not on a trip and not stale.
func TestDispatcherRestartedUnderItsOwnIDMatchesAgain(t *testing.T) {
	const staleAfter = 2 * time.Second
	e := startPlatform(t, nil, Gateway, Tripstate)
	bin := proctest.Build(t, "github.com/hexride/hexride/cmd/dispatcher")
	addr := proctest.FreeAddr(t)
	env := []string{"KAFKA_BROKERS=" + strings.Join(e.brokers, ","), "REDIS_ADDR=" + e.cfg.RedisAddr,
		"HEXRIDE_ADDR=" + addr, "HEXRIDE_REPLICA_ID=dispatcher-1", "HEXRIDE_JWT_SECRET=restart-test",
		"HEXRIDE_DRIVER_STALE_AFTER=" + staleAfter.String()}
	disp := proctest.Start(t, "dispatcher", bin, env)
	disp.WaitReady(t, addr, 30*time.Second)

	// The pickup is at 37.7749,-122.4194. near is nearest and takes the
	// first ride; stale is next nearest but stops pinging; far is left.
	near := e.connect("driver", "d-near", "")
	near.goOnline(37.7755, -122.4180)
	stale := e.connect("driver", "d-stale", "")
	stale.mustAck("online", map[string]any{"type": "availability", "available": true})
	stale.send(map[string]any{"type": "location", "lat": 37.7760, "lng": -122.4170})
	staleSince := time.Now()
	far := e.connect("driver", "d-far", "")
	far.goOnline(37.7800, -122.4130)

	r1 := e.connect("rider", "r-1", "")
	trip1 := requestRide(t, r1, "req-1")
	offer := near.await("offer of trip 1", 10*time.Second, func(m map[string]any) bool {
		return m["type"] == "offer" && m["trip_id"] == trip1
	})
	near.mustAck("accept-1", map[string]any{"type": "offer.accept", "offer_id": offer["offer_id"], "trip_id": trip1})
	r1.await("ACCEPTED", 10*time.Second, tripState("ACCEPTED"))

	disp.Kill()
	r2 := e.connect("rider", "r-2", "")
	trip2 := requestRide(t, r2, "req-2") // acked while no dispatcher runs
	time.Sleep(time.Until(staleSince.Add(staleAfter + 200*time.Millisecond)))

	restarted := time.Now()
	disp = proctest.Start(t, "dispatcher (restarted)", bin, env)
	far.await("offer of trip 2", 5*time.Second, func(m map[string]any) bool {
		return m["type"] == "offer" && m["trip_id"] == trip2
	})
	t.Logf("the restarted dispatcher offered trip 2 %s after it was started", time.Since(restarted).Round(time.Millisecond))
	for _, p := range []*phone{near, stale} {
		for _, m := range p.messages() {
			if m["type"] == "offer" && m["trip_id"] == trip2 {
				t.Errorf("%s was offered trip 2 (on a trip or stale): %v", p.user, m)
			}
		}
	}
	disp.WaitReady(t, addr, 5*time.Second)
}
