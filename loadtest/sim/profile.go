package sim

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// profiles are named loads: where the platform's users live, not only its
// saturation.
var profiles = map[string]func(Config) Config{
	"": func(c Config) Config { return c },
	// A city of 10,000 drivers, each pinging every 4 s (2,500 pings/s),
	// and 10 ride requests a second, for a minute: the load issue 22's
	// latency target is set at.
	"city": city,
	// The city at growing sizes, one run each (-sweep), so the knee shows.
	"sweep": func(c Config) Config {
		c = city(c)
		c.Duration = 30 * time.Second
		return c
	},
}

func city(c Config) Config {
	c.Drivers = 10_000
	c.RequestsPerSec = 10
	c.Duration = 60 * time.Second
	c.RampUp = 20 * time.Second
	c.Drain = 5 * time.Second
	c.PingMin, c.PingMax = 4*time.Second, 4*time.Second
	return c
}

// Profile is the default configuration of a named load.
func Profile(name string) (Config, bool) {
	p, ok := profiles[name]
	if !ok {
		return Config{}, false
	}
	return p(DefaultConfig()), true
}

// profileOf finds -profile among args before the flags are parsed, since
// it sets their defaults.
func profileOf(args []string) string {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if v, ok := strings.CutPrefix(a, "profile="); ok {
			return v
		}
		if a == "profile" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// SweepStep is one size of the sweep.
type SweepStep struct {
	Drivers     int         `json:"drivers"`
	PingsPerSec float64     `json:"pings_per_second"`
	Client      Percentiles `json:"request_to_offer_ms"`
	Server      Percentiles `json:"server_request_to_offer_ms"`
	// PlatformCPU is the target's CPU over the run, in cores, from its
	// process_cpu_seconds_total (absent if it serves no /metrics).
	PlatformCPU float64 `json:"platform_cores"`
	MatchRate   float64 `json:"match_rate"`
}

// runSweep runs cfg at each driver count of list in turn and prints a row
// per step: where request→offer's tail and the platform's CPU turn.
func runSweep(ctx context.Context, cfg Config, list, jsonPath string, stdout io.Writer, say func(string, ...any)) int {
	var steps []SweepStep
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			say("-sweep: %q is not a driver count", f)
			return ExitUsage
		}
		c := cfg
		c.Drivers = n
		c.IDPrefix = ""
		say("sweep: %d drivers, %g requests/s for %s", n, c.RequestsPerSec, c.Duration)
		rep, err := Run(ctx, c, nil)
		if err != nil {
			say("%d drivers: %v", n, err)
			return ExitError
		}
		st := SweepStep{Drivers: n, PingsPerSec: rep.Pings.AcceptedPerSec, Client: rep.Latency.RequestToOffer,
			PlatformCPU: rep.PlatformCores, MatchRate: rep.Requests.MatchRate}
		if p := rep.Latency.ServerRequestToOffer; p != nil {
			st.Server = *p
		}
		steps = append(steps, st)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "drivers\tpings/s\trequest→offer p50 ms\tp99 ms\ton the server p50 ms\tp99 ms\tplatform cores\tmatched\t")
	for _, s := range steps {
		fmt.Fprintf(tw, "%d\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.1f%%\t\n", s.Drivers, s.PingsPerSec, s.Client.P50, s.Client.P99,
			s.Server.P50, s.Server.P99, s.PlatformCPU, 100*s.MatchRate)
	}
	if err := tw.Flush(); err != nil {
		say("%v", err)
		return ExitError
	}
	if jsonPath != "" {
		if err := writeFile(jsonPath, func(w io.Writer) error { return writeIndentedJSON(w, steps) }); err != nil {
			say("%v", err)
			return ExitError
		}
	}
	return ExitOK
}
