package sim_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hexride/hexride/internal/devbroker"
	"github.com/hexride/hexride/internal/devredis"
	"github.com/hexride/hexride/internal/platform"
	"github.com/hexride/hexride/internal/platformtest"
	"github.com/hexride/hexride/loadtest/sim"
)

// startPlatform runs every service in-process on an embedded broker and
// Redis, with short offer timeout and search deadline, and returns its base
// URL.
func startPlatform(t *testing.T) string { return startPlatformWith(t, nil) }

// startPlatformWith is startPlatform with settings changed by mutate.
func startPlatformWith(t *testing.T, mutate func(*platform.Config)) string {
	t.Helper()
	cfg := platform.Config{Addr: "127.0.0.1:0", DevAuth: true, LogLevel: "warn", KafkaPartitions: 4,
		OfferTimeout: 2 * time.Second, SearchDeadline: 6 * time.Second, StaleAfter: 15 * time.Second, MaxPickupM: 500,
		MaxSpeedKMH: 5000} // the simulated drivers drive up to 60 times faster than cars
	if mutate != nil {
		mutate(&cfg)
	}
	var logOut io.Writer = io.Discard
	if os.Getenv("HEXRIDE_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	run := platformtest.Start(t, func(ctx context.Context, onReady func(*platform.Running)) error {
		return platform.Run(ctx, cfg, log, platform.Options{Embedded: true, MetricsOnAddr: true, DevBroker: devbroker.ForPlatform,
			DevRedis: devredis.Start, OnReady: onReady})
	})
	return "http://" + run.Addr
}

// TestRunAgainstPlatform runs a short simulation against the whole platform
// and checks the ride bookkeeping from the report: rides complete, every
// request ends in a terminal state once drained, and the only errors are the
// races a busy city has (conflict: an offer or a step overtaken by a
// cancellation or an expiry). The platform's short pickup radius, offer
// timeout and search deadline, and drivers that decline often or think past
// the timeout, make the run go through declines, expiries and NO_DRIVERS as
// well as completed and cancelled rides.
func TestRunAgainstPlatform(t *testing.T) {
	target := startPlatform(t)
	t.Run("bounded", func(t *testing.T) { testBounded(t, target) })
	t.Run("endless demo city", func(t *testing.T) { testEndless(t, target) })
}

// testEndless: with Duration 0 the demo city runs until ctx ends, then
// hangs up and returns its report without an error.
func testEndless(t *testing.T, target string) {
	cfg := sim.DemoCity(target)
	cfg.Drivers = 5
	cfg.RequestsPerSec = 1
	cfg.RampUp = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	start := time.Now()
	rep, err := sim.Run(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("took %s to stop after ctx ended", took)
	}
	if rep.Drivers.Online != 5 || rep.Pings.Sent == 0 || rep.Requests.Sent == 0 || rep.Interrupted {
		t.Errorf("drivers online %d, pings %d, requests %d, interrupted %v", rep.Drivers.Online, rep.Pings.Sent,
			rep.Requests.Sent, rep.Interrupted)
	}
	if len(rep.ClientFailures) > 0 {
		t.Errorf("client failures %v: %v", rep.ClientFailures, rep.FirstErrors)
	}
}

func testBounded(t *testing.T, target string) {

	cfg := sim.DefaultConfig()
	cfg.Target = target
	cfg.Drivers = 30
	cfg.RequestsPerSec = 3
	cfg.Duration = 8 * time.Second
	cfg.RampUp = time.Second
	cfg.Drain = 40 * time.Second
	cfg.Seed = 7
	cfg.AcceptProb = 0.6
	cfg.CancelProb = 0.15
	cfg.CancelWithin = 4 * time.Second
	cfg.ThinkMin, cfg.ThinkMax = 100*time.Millisecond, 2400*time.Millisecond
	cfg.PingMin, cfg.PingMax = 500*time.Millisecond, time.Second
	cfg.SizeKM = 2
	cfg.Speedup = 30

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var progress strings.Builder
	rep, err := sim.Run(ctx, cfg, &progress)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var table strings.Builder
	_ = rep.WriteTable(&table)
	t.Logf("report:\n%s", table.String())

	q := rep.Requests
	if rep.Drivers.Online != int64(cfg.Drivers) {
		t.Errorf("%d of %d drivers online", rep.Drivers.Online, cfg.Drivers)
	}
	if q.Requests < 5 {
		t.Errorf("only %d requests got a trip id (sent %d)", q.Requests, q.Sent)
	}
	if q.Completed == 0 {
		t.Error("no ride completed")
	}
	if q.Failed != 0 || q.Unanswered != 0 || q.RidersFailed != 0 {
		t.Errorf("requests failed %d, unanswered %d, riders that could not connect %d", q.Failed, q.Unanswered, q.RidersFailed)
	}
	if q.Unfinished != 0 {
		t.Errorf("%d requests still active after the drain", q.Unfinished)
	}
	if got := q.Completed + q.Cancelled + q.NoDrivers; got != q.Requests {
		t.Errorf("requests %d != completed %d + cancelled %d + no_drivers %d", q.Requests, q.Completed, q.Cancelled, q.NoDrivers)
	}
	if q.Sent != q.Requests {
		t.Errorf("sent %d requests, %d got a trip id", q.Sent, q.Requests)
	}
	if q.Matched == 0 || rep.Latency.RequestToOffer.Count == 0 || rep.Latency.RequestToAccepted.Count != q.Matched {
		t.Errorf("matched %d, request→offer count %d, request→accepted count %d",
			q.Matched, rep.Latency.RequestToOffer.Count, rep.Latency.RequestToAccepted.Count)
	}
	if rep.Latency.Push.Count == 0 || rep.PickupDistanceM.Count == 0 {
		t.Errorf("no push latency (%d) or pickup distance (%d) recorded", rep.Latency.Push.Count, rep.PickupDistanceM.Count)
	}
	if rep.Pings.Sent == 0 || rep.Pings.Accepted != rep.Pings.Sent {
		t.Errorf("pings sent %d, accepted %d", rep.Pings.Sent, rep.Pings.Accepted)
	}
	for code, n := range rep.Errors {
		if code != "conflict" {
			t.Errorf("unexpected error %s ×%d (first: %s)", code, n, rep.FirstErrors[code])
		}
	}
	if len(rep.ClientFailures) > 0 || rep.Drivers.Stuck > 0 {
		t.Errorf("client failures %v, stuck drivers %d: %v", rep.ClientFailures, rep.Drivers.Stuck, rep.FirstErrors)
	}
	if rep.Connections.Disconnects != 0 {
		t.Errorf("%d sockets dropped", rep.Connections.Disconnects)
	}
	// The timeline has a point a second, in order, and adds up: the pings
	// and requests of its seconds are the run's (each rate is over the
	// time since the point before).
	if len(rep.Timeline) < 10 {
		t.Errorf("timeline has %d points for a %.0f s run", len(rep.Timeline), rep.ElapsedS)
	}
	var pings, requests, last float64
	for _, p := range rep.Timeline {
		if p.T <= last {
			t.Fatalf("timeline goes back: %v after %v s", p.T, last)
		}
		pings += p.PingsPerSec * (p.T - last)
		requests += p.RequestsPerSec * (p.T - last)
		last = p.T
	}
	if math.Abs(pings-float64(rep.Pings.Sent)) > 0.01*float64(rep.Pings.Sent)+1 ||
		math.Abs(requests-float64(q.Requests)) > 0.5 {
		t.Errorf("timeline adds up to %.1f pings and %.1f requests; the run sent %d and %d", pings, requests,
			rep.Pings.Sent, q.Requests)
	}
	if !strings.Contains(progress.String(), "drivers 30/30") {
		t.Errorf("progress never showed every driver online: %q", tail(progress.String(), 300))
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// TestIdleWeighsSockets holds idle sockets on a real platform and reads
// their cost back from its /metrics. Memory figures are only meaningful on
// a platform of their own (docs/loadtest.md); here the sockets' own ends
// share the process, so only the counts are checked.
func TestIdleWeighsSockets(t *testing.T) {
	target := startPlatform(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := sim.Idle(ctx, sim.IdleConfig{Target: target, Conns: 40, Settle: 300 * time.Millisecond})
	if err != nil && !strings.Contains(err.Error(), "did not grow") {
		t.Fatal(err)
	}
	if rep.Open != 40 || rep.Failed != 0 {
		t.Fatalf("%d sockets open, %d failed (%s); want 40 and 0", rep.Open, rep.Failed, rep.FirstErr)
	}
	if got := rep.After.Connections - rep.Before.Connections; got != 40 {
		t.Fatalf("the gateway counts %v more connections, want 40", got)
	}
	if rep.GoroutinesPerConn < 0.9 { // both ends count here: at least the gateway's reader
		t.Fatalf("%.2f goroutines per socket; want at least the gateway's reader", rep.GoroutinesPerConn)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil || !strings.Contains(table.String(), "KiB per socket") {
		t.Fatalf("table %q (%v)", table.String(), err)
	}
}
