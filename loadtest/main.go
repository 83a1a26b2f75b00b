// Command loadtest drives simulated phones at a hexride platform on this
// machine and reports what it measured: ping throughput, match rate,
// request→offer and request→accepted latency, trip push and ping→rider latency, pickup distance
// and errors by code. The phones speak only the public WebSocket contract;
// see package sim for the city and their behaviour.
//
//	go run ./cmd/hexride &
//	go run ./loadtest -drivers 200 -rate 5 -duration 20s
//
// Only loopback targets are accepted (127.0.0.0/8, ::1, localhost): a load
// test aimed anywhere else exits with status 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hexride/hexride/loadtest/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the run failed or was interrupted
	exitUsage = 2 // bad flags or a target that is not loopback
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	def := sim.DefaultConfig()
	cfg := def
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Target, "target", def.Target, "platform base URL; loopback only (127.0.0.0/8, ::1, localhost)")
	fs.IntVar(&cfg.Drivers, "drivers", def.Drivers, "driver phones")
	fs.Float64Var(&cfg.RequestsPerSec, "rate", def.RequestsPerSec, "ride requests per second (Poisson arrivals)")
	fs.DurationVar(&cfg.Duration, "duration", def.Duration, "how long riders keep requesting, after the ramp; 0 runs until interrupted")
	fs.DurationVar(&cfg.RampUp, "ramp", def.RampUp, "spread driver connections over this long before requests start")
	fs.DurationVar(&cfg.Drain, "drain", def.Drain, "longest wait after the request window for rides to end")
	fs.IntVar(&cfg.MaxRequests, "max-requests", 0, "stop requesting after this many (0: no cap)")
	fs.Uint64Var(&cfg.Seed, "seed", def.Seed, "random seed: the same seed makes the same city, phones and requests")
	fs.Float64Var(&cfg.AcceptProb, "accept", def.AcceptProb, "probability a driver accepts an offer")
	fs.Float64Var(&cfg.CancelProb, "cancel", def.CancelProb, "probability a rider cancels before the ride starts")
	fs.Float64Var(&cfg.SizeKM, "city-km", def.SizeKM, "side of the square city, km")
	fs.Float64Var(&cfg.Speedup, "speedup", def.Speedup, "driving runs this many times faster than real time (1: real time)")
	fs.DurationVar(&cfg.PingMin, "ping-min", def.PingMin, "shortest interval between a driver's location pings")
	fs.DurationVar(&cfg.PingMax, "ping-max", def.PingMax, "longest interval between a driver's location pings")
	fs.StringVar(&cfg.IDPrefix, "id-prefix", "", "prefix of simulated user ids (default: lt and the start time)")
	jsonPath := fs.String("json", "", "also write the report as JSON to this file")
	htmlPath := fs.String("html", "", "also write the report as an HTML page to this file, with throughput and latency plotted over time")
	quiet := fs.Bool("quiet", false, "no progress bar")
	idle := fs.Int("idle", 0, "instead of a simulation: open this many idle driver sockets, hold them, and report the target's memory and goroutines per socket")
	settle := fs.Duration("settle", 10*time.Second, "with -idle: how long to hold the sockets before measuring")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if _, err := sim.CheckTarget(cfg.Target); err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return exitUsage
	}
	if *idle != 0 {
		return runIdle(ctx, sim.IdleConfig{Target: cfg.Target, Conns: *idle, Settle: *settle, IDPrefix: cfg.IDPrefix}, *jsonPath, stdout, stderr)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return exitUsage
	}

	fmt.Fprintf(stderr, "loadtest: %d drivers, %g requests/s, against %s\n", cfg.Drivers, cfg.RequestsPerSec, cfg.Target)
	var progress io.Writer = stderr
	if *quiet {
		progress = nil
	}
	start := time.Now()
	rep, err := sim.Run(ctx, cfg, progress)
	if rep == nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return exitError
	}
	fmt.Fprintln(stdout)
	if werr := rep.WriteTable(stdout); werr != nil {
		fmt.Fprintln(stderr, "loadtest:", werr)
		return exitError
	}
	for _, out := range []struct {
		path  string
		write func(io.Writer) error
	}{{*jsonPath, rep.WriteJSON}, {*htmlPath, rep.WriteHTML}} {
		if out.path == "" {
			continue
		}
		if werr := writeFile(out.path, out.write); werr != nil {
			fmt.Fprintln(stderr, "loadtest:", werr)
			return exitError
		}
		fmt.Fprintf(stderr, "loadtest: wrote %s\n", out.path)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintf(stderr, "loadtest: interrupted after %s\n", time.Since(start).Round(time.Second))
		} else {
			fmt.Fprintln(stderr, "loadtest:", err)
		}
		return exitError
	}
	return exitOK
}

// runIdle weighs idle sockets on the target (the -idle mode).
func runIdle(ctx context.Context, cfg sim.IdleConfig, jsonPath string, stdout, stderr io.Writer) int {
	if cfg.Conns < 0 {
		fmt.Fprintf(stderr, "loadtest: -idle must be positive, got %d\n", cfg.Conns)
		return exitUsage
	}
	fmt.Fprintf(stderr, "loadtest: opening %d idle sockets at %s, holding them %s\n", cfg.Conns, cfg.Target, cfg.Settle)
	rep, err := sim.Idle(ctx, cfg)
	if rep != nil {
		if werr := rep.WriteTable(stdout); werr != nil {
			fmt.Fprintln(stderr, "loadtest:", werr)
			return exitError
		}
		if jsonPath != "" {
			if werr := writeFile(jsonPath, rep.WriteJSON); werr != nil {
				fmt.Fprintln(stderr, "loadtest:", werr)
				return exitError
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return exitError
	}
	return exitOK
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
