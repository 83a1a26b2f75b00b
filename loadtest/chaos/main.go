// Command chaos is hexride's fault run: it builds the services, runs them as
// separate processes on a development broker and a real redis-server, drives
// the load tester at them without faults and then, on the same seed, while
// a seeded nemesis kills, pauses and restarts them, and checks both
// histories (see docs/faults.md).
//
//	go run ./loadtest/chaos -seed 1 -load 600s -drivers 600 -rate 3
//
// It exits 1 when the fault run misses the bar the verdict states.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hexride/hexride/loadtest/fault"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 1, "seed of the load and of the nemesis's plan")
	load := fs.Duration("load", 90*time.Second, "how long riders request, in each run")
	drivers := fs.Int("drivers", 400, "driver phones")
	rate := fs.Float64("rate", 2, "ride requests per second")
	brokerKill := fs.Bool("broker-kill", false, "also SIGKILL the broker once and restart it on its data dir")
	baseline := fs.Bool("baseline", true, "run the same seed without faults first and compare")
	jsonPath := fs.String("json", "", "write the results as JSON to this file")
	bin := fs.String("bin", "", "directory with hexride, gateway, dispatcher and tripstate already built (default: build them)")
	dir := fs.String("dir", "", "directory for data and logs (default: a new temporary one, kept)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chaos: unexpected argument %q (every setting is a flag, see -h)\n", fs.Arg(0))
		return 2
	}
	if *dir == "" {
		d, err := fault.TempDir()
		if err != nil {
			fmt.Fprintln(stderr, "chaos:", err)
			return 1
		}
		*dir = d
	}
	bins := fault.BinariesIn(*bin)
	if *bin == "" {
		fmt.Fprintf(stderr, "building the services into %s\n", filepath.Join(*dir, "bin"))
		b, err := fault.Build(ctx, filepath.Join(*dir, "bin"))
		if err != nil {
			fmt.Fprintln(stderr, "chaos:", err)
			return 1
		}
		bins = b
	}
	cfg := fault.Config{Seed: *seed, Load: *load, Drivers: *drivers, RequestsPerSec: *rate, BrokerKill: *brokerKill,
		Bin: bins, Log: stderr}
	var base, faulty *fault.Result
	var err error
	if *baseline {
		base, faulty, err = fault.Compare(ctx, cfg, *dir)
	} else {
		cfg.Faults, cfg.Dir = true, filepath.Join(*dir, "faults")
		faulty, err = fault.Run(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	runs := []*fault.Result{faulty}
	if base != nil {
		runs = []*fault.Result{base, faulty}
	}
	if err := fault.WriteTable(stdout, runs...); err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	fmt.Fprintf(stdout, "\ndata and logs: %s\n", *dir)
	if *jsonPath != "" && base != nil {
		f, err := os.Create(*jsonPath)
		if err == nil {
			err = fault.WriteJSON(f, base, faulty)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "chaos: write the JSON report:", err)
			return 1
		}
	}
	if base != nil && len(fault.Verdict(base, faulty)) > 0 {
		return 1
	}
	return 0
}
