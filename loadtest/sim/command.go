package sim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// Exit statuses of Command.
const (
	ExitOK    = 0
	ExitError = 1 // the run failed or was interrupted
	ExitUsage = 2 // bad flags or a target that is not loopback
)

// Command is the load test's command line: `go run ./loadtest` and `hexride
// loadtest` both run it, name being what its messages call it. It returns
// the process's exit status.
func Command(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	say := func(format string, a ...any) { fmt.Fprintf(stderr, name+": "+format+"\n", a...) }
	// A profile sets the defaults; flags given beside it still win.
	profile := profileOf(args)
	def, ok := Profile(profile)
	if !ok {
		say("unknown -profile %q: want %s", profile, "city or sweep")
		return ExitUsage
	}
	cfg := def
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("profile", profile, "a named load that sets the defaults of the flags below: city (a 10,000-driver city: pings every 4 s, 10 requests/s, 60 s), sweep (the city from 1,000 to 50,000 drivers, one run each; see -sweep)")
	sweep := fs.String("sweep", "1000,2000,5000,10000,20000,50000", "with -profile sweep: the driver counts, in turn")
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
	flood := fs.String("flood", "", "instead of a simulation: legitimate riders request and cancel rides while one client floods; none, user, sockets, reconnect, or all (each in turn)")
	floodFor := fs.Duration("flood-for", 20*time.Second, "with -flood: how long each run lasts")
	floodSockets := fs.Int("flood-sockets", 0, "with -flood: sockets the flood opens (user: 8, sockets: 1000)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		say("unexpected arguments %q", fs.Args())
		return ExitUsage
	}
	if _, err := CheckTarget(cfg.Target); err != nil {
		say("%v", err)
		return ExitUsage
	}
	if *idle != 0 {
		return runIdle(ctx, IdleConfig{Target: cfg.Target, Conns: *idle, Settle: *settle, IDPrefix: cfg.IDPrefix}, *jsonPath, stdout, say)
	}
	if *flood != "" {
		return runFlood(ctx, FloodConfig{Target: cfg.Target, Kind: *flood, Duration: *floodFor, Sockets: *floodSockets,
			IDPrefix: cfg.IDPrefix}, *jsonPath, stdout, say)
	}
	if err := cfg.Validate(); err != nil {
		say("%v", err)
		return ExitUsage
	}
	if profile == "sweep" {
		return runSweep(ctx, cfg, *sweep, *jsonPath, stdout, say)
	}

	say("%d drivers, %g requests/s, against %s", cfg.Drivers, cfg.RequestsPerSec, cfg.Target)
	var progress io.Writer = stderr
	if *quiet {
		progress = nil
	}
	start := time.Now()
	rep, err := Run(ctx, cfg, progress)
	if rep == nil {
		say("%v", err)
		return ExitError
	}
	fmt.Fprintln(stdout)
	if werr := rep.WriteTable(stdout); werr != nil {
		say("%v", werr)
		return ExitError
	}
	for _, out := range []struct {
		path  string
		write func(io.Writer) error
	}{{*jsonPath, rep.WriteJSON}, {*htmlPath, rep.WriteHTML}} {
		if out.path == "" {
			continue
		}
		if werr := writeFile(out.path, out.write); werr != nil {
			say("%v", werr)
			return ExitError
		}
		say("wrote %s", out.path)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			say("interrupted after %s", time.Since(start).Round(time.Second))
		} else {
			say("%v", err)
		}
		return ExitError
	}
	return ExitOK
}

// runFlood measures riders' acks under each flood (the -flood mode).
func runFlood(ctx context.Context, cfg FloodConfig, jsonPath string, stdout io.Writer, say func(string, ...any)) int {
	kinds := []string{cfg.Kind}
	if cfg.Kind == "all" {
		kinds = FloodKinds
	}
	var reps []*FloodReport
	prefix := cfg.IDPrefix
	for i, k := range kinds {
		// Each flood from a loopback address of its own: an IP closed for
		// abuse is held off for a while, which would be the next flood's.
		cfg.Kind, cfg.FloodAddr = k, fmt.Sprintf("127.0.0.%d", 2+i)
		if prefix != "" {
			cfg.IDPrefix = prefix + "-" + k
		}
		say("flood %s: riders requesting and cancelling for %s at %s", k, cfg.Duration, cfg.Target)
		rep, err := Flood(ctx, cfg)
		if err != nil {
			say("%v", err)
			return ExitError
		}
		reps = append(reps, rep)
	}
	if err := WriteFloodTable(stdout, reps...); err != nil {
		say("%v", err)
		return ExitError
	}
	if jsonPath != "" {
		if err := writeFile(jsonPath, func(w io.Writer) error { return writeIndentedJSON(w, reps) }); err != nil {
			say("%v", err)
			return ExitError
		}
	}
	return ExitOK
}

// runIdle weighs idle sockets on the target (the -idle mode).
func runIdle(ctx context.Context, cfg IdleConfig, jsonPath string, stdout io.Writer, say func(string, ...any)) int {
	if cfg.Conns < 0 {
		say("-idle must be positive, got %d", cfg.Conns)
		return ExitUsage
	}
	say("opening %d idle sockets at %s, holding them %s", cfg.Conns, cfg.Target, cfg.Settle)
	rep, err := Idle(ctx, cfg)
	if rep != nil {
		if werr := rep.WriteTable(stdout); werr != nil {
			say("%v", werr)
			return ExitError
		}
		if jsonPath != "" {
			if werr := writeFile(jsonPath, rep.WriteJSON); werr != nil {
				say("%v", werr)
				return ExitError
			}
		}
	}
	if err != nil {
		say("%v", err)
		return ExitError
	}
	return ExitOK
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
