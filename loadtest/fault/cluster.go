package fault

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Binaries are the built commands a cluster runs.
type Binaries struct{ Hexride, Gateway, Dispatcher, Tripstate string }

// Build compiles the hexride commands into dir with plain `go build` (no
// -race: the services are the subject, not the harness) from the module
// that holds this source tree.
func Build(ctx context.Context, dir string) (Binaries, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return Binaries{}, fmt.Errorf("find the module: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	if root == "." || root == "" {
		return Binaries{}, fmt.Errorf("not inside the hexride module (go env GOMOD: %q)", out)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator),
		"./cmd/hexride", "./cmd/gateway", "./cmd/dispatcher", "./cmd/tripstate")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build the services: %w\n%s", err, b)
	}
	return BinariesIn(dir), nil
}

// BinariesIn names the commands in dir.
func BinariesIn(dir string) Binaries {
	return Binaries{Hexride: filepath.Join(dir, "hexride"), Gateway: filepath.Join(dir, "gateway"),
		Dispatcher: filepath.Join(dir, "dispatcher"), Tripstate: filepath.Join(dir, "tripstate")}
}

// Cluster is the broker, Redis and two replicas of each service, each its
// own process on its own loopback port.
type Cluster struct {
	Procs      *Procs
	Broker     *Proc
	Redis      *Proc
	Services   []*Proc // gateways, then dispatchers, then tripstates
	Gateways   []string
	BrokerAddr string
	RedisAddr  string
}

// jwtSecret is shared by the gateways so that a token one minted opens a
// socket on the other; loopback only, development auth on.
const jwtSecret = "hexride-fault-run-secret"

// serviceEnv is every service's configuration; short offer timeout and
// search deadline keep the drain of a run short.
var serviceEnv = []string{"HEXRIDE_DEV_AUTH=true", "HEXRIDE_JWT_SECRET=" + jwtSecret, "HEXRIDE_DEMO_CITY=false",
	"HEXRIDE_LOG_LEVEL=warn", "KAFKA_PARTITIONS=4", "HEXRIDE_OFFER_TIMEOUT=5s", "HEXRIDE_SEARCH_DEADLINE=20s",
	// The load tester's drivers drive -speedup (30) times faster than cars.
	"HEXRIDE_MAX_SPEED_KMH=2500",
	// Its hundreds of phones all come from 127.0.0.1.
	"HEXRIDE_MAX_SOCKETS_PER_IP=0"}

// StartCluster starts everything under dir (data and logs) and returns once
// every process is ready. On error what was started is stopped.
func StartCluster(ctx context.Context, bin Binaries, dir string) (c *Cluster, err error) {
	logDir := filepath.Join(dir, "logs")
	for _, d := range []string{logDir, filepath.Join(dir, "broker"), filepath.Join(dir, "redis")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("make %s: %w", d, err)
		}
	}
	c = &Cluster{Procs: &Procs{LogDir: logDir}}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if c.BrokerAddr, err = freeAddr(); err != nil {
		return c, err
	}
	if c.RedisAddr, err = freeAddr(); err != nil {
		return c, err
	}
	// The broker fsyncs nothing: a SIGKILLed process loses nothing the
	// kernel has, and an fsync per batch on a shared 2-core host would
	// measure the disk, not the platform.
	c.Broker = c.Procs.Add(&Proc{Name: "broker", Path: bin.Hexride, Args: []string{"broker", "-addr", c.BrokerAddr,
		"-data", filepath.Join(dir, "broker"), "-partitions", "4", "-sync=false"}, Ready: tcpReady(c.BrokerAddr)})
	_, redisPort, _ := strings.Cut(c.RedisAddr, ":")
	c.Redis = c.Procs.Add(&Proc{Name: "redis", Path: "redis-server", Args: []string{"--port", redisPort,
		"--bind", "127.0.0.1", "--protected-mode", "no", "--save", "", "--appendonly", "yes",
		"--appendfsync", "always", "--dir", filepath.Join(dir, "redis")}, Ready: redisReady(c.RedisAddr)})
	for _, p := range []*Proc{c.Broker, c.Redis} {
		if err := p.Start(ctx); err != nil {
			return c, err
		}
	}
	for _, s := range []struct{ name, path string }{{"gateway", bin.Gateway}, {"dispatcher", bin.Dispatcher},
		{"tripstate", bin.Tripstate}} {
		for i := 1; i <= 2; i++ {
			addr, err := freeAddr()
			if err != nil {
				return c, err
			}
			name := s.name + "-" + strconv.Itoa(i)
			env := append([]string{"KAFKA_BROKERS=" + c.BrokerAddr, "REDIS_ADDR=" + c.RedisAddr,
				"HEXRIDE_ADDR=" + addr, "HEXRIDE_ADMIN_ADDR=127.0.0.1:0", // two of each on one machine
				"HEXRIDE_REPLICA_ID=" + name}, serviceEnv...)
			c.Services = append(c.Services, c.Procs.Add(&Proc{Name: name, Path: s.path, Env: env, Ready: httpReady(addr)}))
			if s.name == "gateway" {
				c.Gateways = append(c.Gateways, "http://"+addr)
			}
		}
	}
	for _, p := range c.Services {
		if err := p.Start(ctx); err != nil {
			return c, err
		}
	}
	return c, nil
}

// Proc finds a process by name.
func (c *Cluster) Proc(name string) *Proc {
	for _, p := range append([]*Proc{c.Broker, c.Redis}, c.Services...) {
		if p != nil && p.Name == name {
			return p
		}
	}
	return nil
}

// Stop ends every process the cluster started.
func (c *Cluster) Stop() { c.Procs.StopAll(5 * time.Second) }
