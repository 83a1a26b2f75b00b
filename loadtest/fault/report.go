package fault

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/hexride/hexride/loadtest/sim"
)

// Limits are the bar for a fault run.
const (
	MinMatchRatio = 0.95   // match rate under faults ≥ this × the baseline's
	MaxP99MS      = 2000.0 // request→offer and push p99 under faults
)

// Verdict lists every way the fault run misses the bar (empty: it passes).
func Verdict(base, faulty *Result) []string {
	var out []string
	for _, r := range []*Result{base, faulty} {
		name := map[bool]string{false: "without faults", true: "with faults"}[r.Faults]
		for _, kv := range r.Counts.Safety() {
			if n := kv[1].(int); n != 0 {
				out = append(out, fmt.Sprintf("%s: %s = %d (e.g. %v)", name, kv[0], n, r.Counts.Examples[exampleKey(kv[0].(string))]))
			}
		}
	}
	for _, r := range []*Result{base, faulty} {
		name := map[bool]string{false: "without faults", true: "with faults"}[r.Faults]
		if rp := r.Replay; !rp.OK || rp.Published != 0 {
			out = append(out, fmt.Sprintf("%s: hexride replay: %d of %d trips equal, %d differing, %d missing, %d problems, %d records published",
				name, rp.Equal, rp.Trips, rp.Differing, rp.Missing, rp.Problems, rp.Published))
		}
	}
	if b, f := base.Liveness.MatchRate, faulty.Liveness.MatchRate; f < MinMatchRatio*b {
		out = append(out, fmt.Sprintf("match rate with faults %.4f < %.2f × %.4f without", f, MinMatchRatio, b))
	}
	if p := faulty.Liveness.RequestOfferAfterFaultMS.P99; p > MaxP99MS {
		out = append(out, fmt.Sprintf("request→offer p99 after the faults in its way %.0f ms > %.0f ms", p, MaxP99MS))
	}
	if p := faulty.Liveness.PushAfterFaultMS.P99; p > MaxP99MS {
		out = append(out, fmt.Sprintf("push p99 after the faults in its way %.0f ms > %.0f ms", p, MaxP99MS))
	}
	return out
}

var exampleKeys = map[string]string{
	"acked requests with no trip": "acked_without_trip", "trips accepted, never ended": "accepted_never_ended",
	"drivers in two active trips": "driver_in_two_trips", "trips with two drivers": "trip_with_two_drivers",
	"illegal transitions": "illegal_transitions", "version gaps": "version_gaps", "version repeats": "version_repeats",
	"pushes delivered twice": "pushes_delivered_twice", "pushes of states never stored": "pushes_never_stored",
	"requests not terminal": "requests_not_terminal", "requests unanswered": "requests_unanswered",
	"trips not terminal": "trips_not_terminal", "leftover claims": "leftover_claims",
	"leftover reservations": "leftover_reservations",
}

func exampleKey(name string) string { return exampleKeys[name] }

// WriteTable prints the runs side by side, then the faults done and the
// verdict.
func WriteTable(w io.Writer, runs ...*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "\t"
	for _, r := range runs {
		head += map[bool]string{false: "no faults", true: "faults"}[r.Faults] + "\t"
	}
	fmt.Fprintln(tw, head)
	row := func(name string, f func(*Result) string) {
		line := name + "\t"
		for _, r := range runs {
			line += f(r) + "\t"
		}
		fmt.Fprintln(tw, line)
	}
	row("seed", func(r *Result) string { return fmt.Sprint(r.Seed) })
	row("trips in the log", func(r *Result) string { return fmt.Sprint(r.Counts.InfoTrips) })
	row("requests recorded", func(r *Result) string { return fmt.Sprint(r.Counts.InfoRequests) })
	for i := range runs[0].Counts.Safety() {
		name := runs[0].Counts.Safety()[i][0].(string)
		row(name, func(r *Result) string { return fmt.Sprint(r.Counts.Safety()[i][1]) })
	}
	row("hexride replay: trips equal / replayed", func(r *Result) string {
		return fmt.Sprintf("%d / %d", r.Replay.Equal, r.Replay.Trips)
	})
	row("hexride replay: records published", func(r *Result) string { return fmt.Sprint(r.Replay.Published) })
	row("requests with a trip", func(r *Result) string { return fmt.Sprint(r.Liveness.Requests) })
	row("matched", func(r *Result) string { return fmt.Sprint(r.Liveness.Matched) })
	row("match rate", func(r *Result) string { return fmt.Sprintf("%.2f%%", r.Liveness.MatchRate*100) })
	row("request→offer p50/p99 ms", func(r *Result) string {
		return fmt.Sprintf("%.0f / %.0f", r.Liveness.RequestOfferMS.P50, r.Liveness.RequestOfferMS.P99)
	})
	row("push p50/p99 ms", func(r *Result) string {
		return fmt.Sprintf("%.0f / %.0f", r.Liveness.PushMS.P50, r.Liveness.PushMS.P99)
	})
	row("after the faults in the way: request→offer p50/p99 ms", func(r *Result) string {
		return fmt.Sprintf("%.0f / %.0f", r.Liveness.RequestOfferAfterFaultMS.P50, r.Liveness.RequestOfferAfterFaultMS.P99)
	})
	row("after the faults in the way: push p50/p99 ms", func(r *Result) string {
		return fmt.Sprintf("%.0f / %.0f", r.Liveness.PushAfterFaultMS.P50, r.Liveness.PushAfterFaultMS.P99)
	})
	// The load tester's view, to tell the platform's losses from the
	// harness's: a driver step stuck for want of a push, phones that
	// could not get back on.
	load := func(f func(*sim.Report) int64) func(*Result) string {
		return func(r *Result) string {
			if r.Load == nil {
				return "-"
			}
			return fmt.Sprint(f(r.Load))
		}
	}
	row("driver steps stuck (no push)", load(func(l *sim.Report) int64 { return l.Drivers.Stuck }))
	row("reconnects / phones lost", func(r *Result) string {
		if r.Load == nil {
			return "-"
		}
		return fmt.Sprintf("%d / %d", r.Load.Connections.Reconnects, r.Load.Connections.Lost)
	})
	row("requests failed (error answer)", load(func(l *sim.Report) int64 { return l.Requests.Failed }))
	row("reservations expiring", func(r *Result) string { return fmt.Sprint(r.Counts.InfoExpiringReservations) })
	row("undecodable records", func(r *Result) string { return fmt.Sprint(r.Counts.InfoUndecodable) })
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range runs {
		if len(r.Counts.DeadLetters) > 0 {
			fmt.Fprintf(w, "\ndead letters (%s):\n", map[bool]string{false: "no faults", true: "faults"}[r.Faults])
			for _, k := range slices.Sorted(maps.Keys(r.Counts.DeadLetters)) {
				fmt.Fprintf(w, "  %5d  %s\n", r.Counts.DeadLetters[k], k)
			}
		}
		if len(r.Counts.Examples) > 0 {
			fmt.Fprintf(w, "\nexamples (%s):\n", map[bool]string{false: "no faults", true: "faults"}[r.Faults])
			for _, k := range slices.Sorted(maps.Keys(r.Counts.Examples)) {
				for _, e := range r.Counts.Examples[k] {
					fmt.Fprintf(w, "  %s: %s\n", k, e)
				}
			}
		}
		if len(r.Done) > 0 {
			fmt.Fprintf(w, "\nfaults done (seed %d):\n", r.Seed)
			for _, f := range r.Done {
				status := fmt.Sprintf("began %.1fs, took %.1fs", f.Started.Seconds(), f.Took.Seconds())
				if f.Err != "" {
					status += ": " + f.Err
				}
				fmt.Fprintf(w, "  %s  (%s)\n", f, status)
			}
		}
	}
	if len(runs) == 2 {
		v := Verdict(runs[0], runs[1])
		fmt.Fprintln(w)
		if len(v) == 0 {
			fmt.Fprintln(w, "verdict: PASS")
		} else {
			fmt.Fprintf(w, "verdict: FAIL\n  %s\n", strings.Join(v, "\n  "))
		}
	}
	return nil
}

// WriteJSON writes the runs and the verdict as indented JSON.
func WriteJSON(w io.Writer, base, faulty *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"no_faults": base, "faults": faulty, "verdict": Verdict(base, faulty)})
}
