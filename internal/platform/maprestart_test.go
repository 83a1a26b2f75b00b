package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hexride/hexride/internal/proctest"
)

// mapStats is what a viewer's snapshot says of the city.
type mapStats struct {
	Online    int            `json:"drivers_online"`
	Available int            `json:"drivers_available"`
	Active    map[string]int `json:"active"`
}

// viewMap connects a viewer to addr and returns the stats of its first
// snapshot.
func viewMap(t *testing.T, addr, token string) (mapStats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws?token="+token, nil)
	if err != nil {
		return mapStats{}, err
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 22)
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return mapStats{}, err
		}
		var f struct {
			Type  string   `json:"type"`
			Stats mapStats `json:"stats"`
		}
		if json.Unmarshal(b, &f) == nil && f.Type == "map.snapshot" {
			return f.Stats, nil
		}
	}
}

// TestLiveMapRebuiltAfterTheGatewayRestarts kills the gateway (an OS
// process) while drivers are online, one on a trip, long after they said
// they were available, and starts it again. The map it then serves shows
// the same city: its picture is rebuilt from the availability record and
// the log, not remembered.
func TestLiveMapRebuiltAfterTheGatewayRestarts(t *testing.T) {
	const staleAfter = 2 * time.Second
	e := startPlatform(t, nil, Tripstate, Dispatcher)
	bin := proctest.Build(t, "github.com/hexride/hexride/cmd/gateway")
	addr := proctest.FreeAddr(t)
	const secret = "map-restart-test"
	settings := []string{"KAFKA_BROKERS=" + strings.Join(e.brokers, ","), "REDIS_ADDR=" + e.cfg.RedisAddr,
		"HEXRIDE_ADDR=" + addr, "HEXRIDE_JWT_SECRET=" + secret, "HEXRIDE_DRIVER_STALE_AFTER=" + staleAfter.String()}
	gw := &env{t: t, run: &Running{Addr: addr, Tokens: NewTokensForTest(secret)}, brokers: e.brokers, cfg: e.cfg}
	proc := proctest.Start(t, "gateway", bin, settings)
	proc.WaitReady(t, addr, 30*time.Second)

	positions := [][2]float64{{37.7755, -122.4180}, {37.7800, -122.4130}, {37.7700, -122.4250}}
	drivers := make([]*phone, len(positions))
	for i, p := range positions {
		drivers[i] = gw.connect("driver", fmt.Sprintf("d-%d", i), "")
		drivers[i].goOnline(p[0], p[1])
	}
	rider := gw.connect("rider", "r-1", "")
	trip := requestRide(t, rider, "req")
	offer := drivers[0].await("offer", 10*time.Second, isType("offer"))
	drivers[0].mustAck("accept", map[string]any{"type": "offer.accept", "offer_id": offer["offer_id"], "trip_id": trip})
	rider.await("ACCEPTED", 10*time.Second, tripState("ACCEPTED"))
	// The availability events leave the part of driver.events the map
	// re-reads; the pings keep the drivers on it.
	time.Sleep(staleAfter + time.Second)

	viewer := gw.token("viewer", "ops")
	want := mapStats{Online: 3, Available: 2, Active: map[string]int{"ACCEPTED": 1}}
	waitStats := func(when string) {
		t.Helper()
		var got mapStats
		var err error
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if got, err = viewMap(t, addr, viewer); err == nil && fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
		}
		t.Fatalf("%s: map shows %+v (err %v), want %+v", when, got, err, want)
	}
	waitStats("before the restart")

	proc.Kill()
	proc = proctest.Start(t, "gateway (restarted)", bin, settings)
	proc.WaitReady(t, addr, 30*time.Second)
	// The phones come back and go on pinging; nobody says availability again.
	for i, p := range positions {
		d := gw.connect("driver", fmt.Sprintf("d-%d", i), "after_seq=0")
		d.pingEvery(300*time.Millisecond, p[0], p[1])
	}
	waitStats("after the restart")
}
