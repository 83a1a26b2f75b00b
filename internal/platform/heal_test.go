package platform

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hexride/hexride/internal/devbroker"
	"github.com/hexride/hexride/internal/proctest"
)

// redisProc is a redis-server of the test's own, with its append-only file,
// that can be killed and started again on the same port and directory.
type redisProc struct {
	t    *testing.T
	Addr string
	dir  string
	proc *proctest.Proc
}

func startRedisProc(t *testing.T) *redisProc {
	r := &redisProc{t: t, Addr: proctest.FreeAddr(t), dir: t.TempDir()}
	r.start()
	return r
}

func (r *redisProc) start() {
	_, port, err := net.SplitHostPort(r.Addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.proc = proctest.Start(r.t, "redis-server", "redis-server", nil, "--port", port, "--bind", "127.0.0.1",
		"--appendonly", "yes", "--appendfsync", "always", "--dir", r.dir, "--save", "")
	waitFor(r.t, "redis-server to answer", 5*time.Second, func() bool { return dialOK(r.Addr) })
}

// restart kills the server and starts it again on its append-only file.
func (r *redisProc) restart() {
	r.proc.Kill()
	r.start()
}

// TestSocketWithLostPresenceIsHealed: a socket whose presence entry is gone
// after a Redis restart (the entry was never written, or not kept) would
// hear nothing, since pushes are routed by presence. Within seconds of
// Redis coming back the gateway records it again and fills what the socket
// missed, with no later push needed to reveal the gap.
func TestSocketWithLostPresenceIsHealed(t *testing.T) {
	broker, err := devbroker.StartLocal(0, 4, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	rs := startRedisProc(t)
	cfg := testConfig()
	cfg.KafkaBrokers, cfg.RedisAddr = broker.Addrs()[0], rs.Addr
	e := startOn(t, cfg, broker.Addrs())
	rider := e.connect("rider", "r-heal", "")
	time.Sleep(3 * time.Second) // past the gateway's first look at Redis
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Del(ctx, "presence:rider:r-heal").Err(); err != nil { // presence is per user key (role:sub)
		t.Fatal(err)
	}
	rs.restart() // comes back without the entry
	requestRide(t, rider, "req")
	rider.await("the REQUESTED push", 8*time.Second, tripState("REQUESTED"))
	if n, err := rdb.SCard(ctx, "presence:rider:r-heal").Result(); err != nil || n != 1 {
		t.Fatalf("presence of r-heal: %d members (%v), want this gateway again", n, err)
	}
}
