package fault

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hexride/hexride/loadtest/sim"
	"github.com/hexride/hexride/ride"
)

// Config of one fault run.
type Config struct {
	Seed uint64
	// Load is how long riders request (after a 5 s ramp-up).
	Load           time.Duration
	Drivers        int
	RequestsPerSec float64
	// Faults turns the nemesis on; off, the same seed gives the baseline.
	Faults     bool
	BrokerKill bool
	// Bin holds the built commands (see Build).
	Bin Binaries
	// Dir holds the run's data and logs; it is kept for inspection.
	Dir string
	// Log gets progress lines (nil: none).
	Log io.Writer
	// Drain is how long riders get to finish after the load (default
	// 60 s); Settle how long the platform then gets to end every open trip
	// by itself before the history is read (default 40 s).
	Drain, Settle time.Duration
}

// Result is what one run did and found.
type Result struct {
	Faults   bool           `json:"faults"`
	Seed     uint64         `json:"seed"`
	Plan     []Fault        `json:"plan,omitempty"`
	Done     []Fault        `json:"done,omitempty"`
	Counts   Counts         `json:"counts"`
	Liveness Liveness       `json:"liveness"`
	Records  map[string]int `json:"records_per_topic"`
	Dir      string         `json:"dir"`
	// Replay is `hexride replay` on the state the run left.
	Replay ReplayCheck `json:"replay"`
	// Load is the load tester's report without its per-request logs.
	Load *sim.Report `json:"load"`
	// Pids are every process the run started.
	Pids []int `json:"-"`
}

// Liveness is how well the platform served under the run.
type Liveness struct {
	Requests       int64           `json:"requests"`
	Matched        int64           `json:"matched"`
	MatchRate      float64         `json:"match_rate"`
	RequestOfferMS sim.Percentiles `json:"request_to_offer_ms"`
	PushMS         sim.Percentiles `json:"push_ms"`
	// The same measured from the end of the faults in their way
	// (latency.go): what the fault run holds a build to.
	RequestOfferAfterFaultMS sim.Percentiles `json:"request_to_offer_after_fault_ms"`
	PushAfterFaultMS         sim.Percentiles `json:"push_after_fault_ms"`
}

// Run starts a cluster, drives the load at it with the nemesis (if on),
// lets it settle, reads the whole history and checks it. It stops every
// process it started before it returns, whatever happens.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	logf := func(format string, a ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, time.Now().Format("15:04:05.000 ")+format+"\n", a...)
		}
	}
	const ramp = 5 * time.Second
	drain, settle := cmp.Or(cfg.Drain, 60*time.Second), cmp.Or(cfg.Settle, 40*time.Second)
	// Bounded whatever the services do: the load, its drain, the settling
	// and the reading, with room for the starts.
	ctx, cancel := context.WithTimeout(ctx, ramp+cfg.Load+drain+settle+3*time.Minute)
	defer cancel()

	res = &Result{Faults: cfg.Faults, Seed: cfg.Seed, Dir: cfg.Dir}
	c, err := StartCluster(ctx, cfg.Bin, cfg.Dir)
	if c != nil {
		defer func() { c.Stop(); res.Pids = c.Procs.Pids() }()
	}
	if err != nil {
		return res, err
	}
	logf("cluster up in %s: broker %s, redis %s, gateways %v", cfg.Dir, c.BrokerAddr, c.RedisAddr, c.Gateways)

	var names []string
	for _, p := range c.Services {
		names = append(names, p.Name)
	}
	if cfg.Faults {
		res.Plan = Schedule(cfg.Seed, cfg.Load, names, cfg.BrokerKill)
		for _, f := range res.Plan {
			logf("plan: %s", f)
		}
	}

	sc := sim.DefaultConfig()
	sc.Targets, sc.Record, sc.GiveUpAfter = c.Gateways, true, 60
	sc.Seed, sc.Drivers, sc.RequestsPerSec = cfg.Seed, cfg.Drivers, cfg.RequestsPerSec
	sc.Duration, sc.RampUp, sc.Drain = cfg.Load, ramp, drain
	sc.SizeKM, sc.Speedup, sc.CancelProb = 5, 30, 0.05
	sc.StepTimeout = 30 * time.Second
	sc.IDPrefix = fmt.Sprintf("f%d", cfg.Seed)

	nctx, stopNemesis := context.WithCancel(ctx)
	var wg sync.WaitGroup
	begin := time.Now().Add(ramp)
	if cfg.Faults {
		wg.Go(func() { res.Done = c.Nemesis(nctx, begin, res.Plan, logf) })
	}
	rep, simErr := sim.Run(ctx, sc, nil)
	stopNemesis()
	wg.Wait()
	if simErr != nil {
		return res, fmt.Errorf("load: %w", simErr)
	}
	logf("load done: %d requests, %d matched, %d completed", rep.Requests.Requests, rep.Requests.Matched, rep.Requests.Completed)

	rdb := redis.NewClient(&redis.Options{Addr: c.RedisAddr})
	defer rdb.Close()
	if err := waitSettled(ctx, rdb, settle); err != nil {
		logf("not settled after %s: %v", settle, err)
	}
	h := History{Requests: rep.RequestLog, Pushes: rep.PushLog}
	if res.Records, err = ReadLog(ctx, c.BrokerAddr, &h); err != nil {
		return res, fmt.Errorf("read the log: %w", err)
	}
	if h.Store, err = ReadStore(ctx, rdb); err != nil {
		return res, fmt.Errorf("read the store: %w", err)
	}
	res.Counts = Check(h)
	if res.Replay, err = Replay(ctx, cfg.Bin.Hexride, c.BrokerAddr, c.RedisAddr); err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	res.Liveness = Liveness{Requests: rep.Requests.Requests, Matched: rep.Requests.Matched,
		MatchRate: rep.Requests.MatchRate, RequestOfferMS: rep.Latency.RequestToOffer, PushMS: rep.Latency.Push}
	res.Liveness.RequestOfferAfterFaultMS, res.Liveness.PushAfterFaultMS = latencyAfterFaults(windows(begin, res.Done),
		rep.RequestLog, rep.PushLog)
	rep.RequestLog, rep.PushLog, rep.Timeline = nil, nil, nil
	res.Load = rep
	return res, nil
}

// waitSettled waits until no stored trip is still open (tripstate ends
// searches past their deadline by itself) or for at most d.
func waitSettled(ctx context.Context, rdb *redis.Client, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		s, err := ReadStore(ctx, rdb)
		open := 0
		for _, t := range s.Trips {
			if !ride.Terminal(t.Trip.State) {
				open++
			}
		}
		if err == nil && open == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return fmt.Errorf("%d trips still open", open)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// Compare runs the same seed without faults and then with them, each on a
// fresh cluster under dir, and judges the fault run against the baseline.
func Compare(ctx context.Context, cfg Config, dir string) (base, faulty *Result, err error) {
	cfg.Faults, cfg.Dir = false, filepath.Join(dir, "no-faults")
	if base, err = Run(ctx, cfg); err != nil {
		return base, nil, fmt.Errorf("run without faults: %w", err)
	}
	cfg.Faults, cfg.Dir = true, filepath.Join(dir, "faults")
	if faulty, err = Run(ctx, cfg); err != nil {
		return base, faulty, fmt.Errorf("run with faults: %w", err)
	}
	return base, faulty, nil
}

// TempDir makes a directory for a run's data and logs.
func TempDir() (string, error) {
	d, err := os.MkdirTemp("", "hexride-fault-")
	if err != nil {
		return "", fmt.Errorf("make a run directory: %w", err)
	}
	return d, nil
}
