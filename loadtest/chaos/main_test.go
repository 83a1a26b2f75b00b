package main

import (
	"context"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hexride/hexride/loadtest/fault"
)

var (
	buildOnce sync.Once
	binDir    string
	bins      fault.Binaries
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// built builds the services once per test binary, without -race: they are
// what the run measures, and -race would slow them eightfold on 2 cores.
func built(t *testing.T) fault.Binaries {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "hexride-fault-bin-"); buildErr == nil {
			bins, buildErr = fault.Build(context.Background(), binDir)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bins
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestFaultRun is the bar: the same fixed seed without faults and
// with the nemesis (service kills and pauses, gateways included, a Redis
// kill, a 10 s broker pause), then every safety count 0 in both, every
// request terminal, match rate under faults ≥ 95% of the baseline's, and
// request→offer and push p99 under faults ≤ 2 s, measured from the end of
// the faults in their way (latency.go in loadtest/fault).
func TestFaultRun(t *testing.T) {
	b := built(t)
	dir := t.TempDir()
	cfg := fault.Config{Seed: 7, Load: 60 * time.Second, Drivers: 300, RequestsPerSec: 2, Bin: b,
		Drain: 40 * time.Second, Settle: 15 * time.Second, Log: testLog{t}}
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	base, faulty, err := fault.Compare(ctx, cfg, dir)
	for _, r := range []*fault.Result{base, faulty} {
		if r != nil {
			requireAllGone(t, r.Pids)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	_ = fault.WriteTable(&table, base, faulty)
	t.Logf("fault run report:\n%s", table.String())
	for _, v := range fault.Verdict(base, faulty) {
		t.Error(v)
	}
}

// TestClusterStopsEveryProcess starts the whole cluster, kills one service
// and restarts it, leaves another paused, and stops: no process it started,
// restarted or paused is left.
func TestClusterStopsEveryProcess(t *testing.T) {
	b := built(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := fault.StartCluster(ctx, b, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	gw := c.Proc("gateway-1")
	if err := gw.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(ctx); err != nil {
		t.Fatalf("restart gateway-1 on its port: %v", err)
	}
	if err := c.Proc("tripstate-2").Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Procs.Pids()); n != 9 {
		t.Errorf("%d processes started, want 9 (broker, redis, 6 services, a restart)", n)
	}
	c.Stop()
	requireAllGone(t, c.Procs.Pids())
}

func requireAllGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for fault.Alive(pid) {
			if time.Now().After(deadline) {
				t.Errorf("pid %d still alive after the run stopped", pid)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
