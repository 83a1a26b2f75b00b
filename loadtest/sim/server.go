package sim

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Server-side figures: the platform measures request→offer itself, from the
// ride.request frame's arrival to the offer's write on the driver's socket
// (hexride_request_to_offer_seconds), free of the simulator's own delays.
// The run reads the target's histogram before and after and reports the
// percentiles of what was added in between.

const serverRequestToOffer = "hexride_request_to_offer_seconds"

// readCPU is the target's process_cpu_seconds_total; ok is false without
// /metrics.
func readCPU(ctx context.Context, client *http.Client, url string) (float64, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil || families["process_cpu_seconds_total"] == nil {
		return 0, false
	}
	return metricValue(families["process_cpu_seconds_total"].GetMetric()[0]), true
}

// buckets is a cumulative histogram: upper bounds and counts up to each.
type buckets struct {
	le    []float64
	count []float64
}

// readHistogram reads one histogram from the target's /metrics; ok is false
// if the target serves no /metrics there (production puts it on an admin
// address) or has no such histogram yet.
func readHistogram(ctx context.Context, client *http.Client, url, name string) (buckets, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return buckets{}, false
	}
	resp, err := client.Do(req)
	if err != nil {
		return buckets{}, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return buckets{}, false
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil || families[name] == nil || len(families[name].GetMetric()) == 0 {
		return buckets{}, false
	}
	h := families[name].GetMetric()[0].GetHistogram()
	var b buckets
	for _, bk := range h.GetBucket() {
		b.le = append(b.le, bk.GetUpperBound())
		b.count = append(b.count, float64(bk.GetCumulativeCount()))
	}
	b.le = append(b.le, math.Inf(1))
	b.count = append(b.count, float64(h.GetSampleCount()))
	return b, true
}

// since is what was added to b after before.
func (b buckets) since(before buckets) buckets {
	d := buckets{le: slices.Clone(b.le), count: slices.Clone(b.count)}
	if len(before.count) == len(d.count) {
		for i := range d.count {
			d.count[i] -= before.count[i]
		}
	}
	return d
}

// quantile is q's value in seconds, interpolated within its bucket (the
// last finite bound for the overflow bucket).
func (b buckets) quantile(q float64) float64 {
	n := len(b.count)
	if n == 0 || b.count[n-1] == 0 {
		return 0
	}
	rank := q * b.count[n-1]
	for i, c := range b.count {
		if c < rank {
			continue
		}
		lo, prev := 0.0, 0.0
		if i > 0 {
			lo, prev = b.le[i-1], b.count[i-1]
		}
		hi := b.le[i]
		if math.IsInf(hi, 1) {
			return lo
		}
		if c == prev {
			return hi
		}
		return lo + (hi-lo)*(rank-prev)/(c-prev)
	}
	return b.le[n-2]
}

// percentiles in milliseconds; Max is the upper bound of the highest
// bucket with a sample.
func (b buckets) percentiles() Percentiles {
	n := len(b.count)
	if n == 0 {
		return Percentiles{}
	}
	p := Percentiles{Count: int64(b.count[n-1]), P50: 1000 * b.quantile(0.5), P90: 1000 * b.quantile(0.9),
		P99: 1000 * b.quantile(0.99)}
	for i := n - 1; i >= 0; i-- {
		if i == 0 || b.count[i] > b.count[i-1] {
			if !math.IsInf(b.le[i], 1) {
				p.Max = 1000 * b.le[i]
			} else if i > 0 {
				p.Max = 1000 * b.le[i-1]
			}
			break
		}
	}
	return p
}

func (p Percentiles) String() string {
	return fmt.Sprintf("p50 %.1f, p90 %.1f, p99 %.1f ms of %d", p.P50, p.P90, p.P99, p.Count)
}
