package fault

import (
	"math"
	"slices"
	"time"

	"github.com/hexride/hexride/loadtest/sim"
)

// A request sent into a 10 s broker pause waits for the broker: no build
// can answer it sooner, and about a sixth of a minute's requests meet that
// pause. What a fault run can hold a build to is the wait *after* the
// faults in a request's way have ended: no phone left waiting long after
// an outage. So beside the raw percentiles, each latency from a to b is
// also measured from the end of the last fault window overlapping [a, b]
// (a pause until its SIGCONT, a kill until the process is ready again, a
// Redis outage until it answers), when that is later than a. A request that
// met no fault counts as it is.

// window is when one fault held the platform.
type window struct{ from, to time.Time }

// windows are the faults done, in absolute time.
func windows(begin time.Time, done []Fault) []window {
	var ws []window
	for _, f := range done {
		if f.Err != "" && f.Took == 0 {
			continue
		}
		from := begin.Add(f.Started)
		ws = append(ws, window{from: from, to: from.Add(f.Took)})
	}
	slices.SortFunc(ws, func(a, b window) int { return a.from.Compare(b.from) })
	return ws
}

// afterFaults is b minus the later of a and the end of every fault window
// overlapping [a, b] (never below zero).
func afterFaults(ws []window, a, b time.Time) time.Duration {
	for _, w := range ws { // sorted by start: a only moves forward
		if w.from.Before(b) && w.to.After(a) {
			a = w.to
		}
	}
	return max(b.Sub(a), 0)
}

// percentiles summarises durations in milliseconds.
func percentiles(ds []time.Duration) sim.Percentiles {
	if len(ds) == 0 {
		return sim.Percentiles{}
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	at := func(q float64) float64 { return ms(ds[int(math.Ceil(q*float64(len(ds))))-1]) }
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sim.Percentiles{Count: int64(len(ds)), P50: at(0.50), P90: at(0.90), P99: at(0.99),
		Max: ms(ds[len(ds)-1]), Mean: ms(sum / time.Duration(len(ds)))}
}

// latencyAfterFaults is request→offer and push latency measured from the end
// of the faults in their way.
func latencyAfterFaults(ws []window, reqs []sim.RequestRecord, pushes []sim.PushRecord) (offer, push sim.Percentiles) {
	var os, ps []time.Duration
	for _, r := range reqs {
		if !r.SentAt.IsZero() && !r.OfferedAt.IsZero() {
			os = append(os, afterFaults(ws, r.SentAt, r.OfferedAt))
		}
	}
	for _, p := range pushes {
		if !p.UpdatedAt.IsZero() && !p.Resync {
			ps = append(ps, afterFaults(ws, p.UpdatedAt, p.At))
		}
	}
	return percentiles(os), percentiles(ps)
}
