package sim

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Server-side figures: the platform measures request→offer itself, from the
// ride.request frame's arrival to the offer's write on the driver's socket
// (hexride_request_to_offer_seconds), free of the simulator's own delays.
// The run reads the target's histogram before and after and reports the
// percentiles of what was added in between.

const serverRequestToOffer = "hexride_request_to_offer_seconds"

// fetchMetrics reads and parses the target's /metrics.
func fetchMetrics(ctx context.Context, client *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read target metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse target metrics: %w", err)
	}
	return families, nil
}

// serverReading is one reading of the target's own figures; each ok is
// false if the target serves no /metrics there (production puts it on an
// admin address) or lacks the figure yet.
type serverReading struct {
	cpu              float64
	cpuOK            bool
	requestToOffer   buckets
	requestToOfferOK bool
}

func readServer(ctx context.Context, client *http.Client, url string) serverReading {
	var r serverReading
	families, err := fetchMetrics(ctx, client, url)
	if err != nil {
		return r
	}
	if f := families["process_cpu_seconds_total"]; f != nil && len(f.GetMetric()) > 0 {
		r.cpu, r.cpuOK = metricValue(f.GetMetric()[0]), true
	}
	if f := families[serverRequestToOffer]; f != nil && len(f.GetMetric()) > 0 {
		h := f.GetMetric()[0].GetHistogram()
		for _, bk := range h.GetBucket() {
			r.requestToOffer.le = append(r.requestToOffer.le, bk.GetUpperBound())
			r.requestToOffer.count = append(r.requestToOffer.count, float64(bk.GetCumulativeCount()))
		}
		r.requestToOffer.le = append(r.requestToOffer.le, math.Inf(1))
		r.requestToOffer.count = append(r.requestToOffer.count, float64(h.GetSampleCount()))
		r.requestToOfferOK = true
	}
	return r
}

// buckets is a cumulative histogram: upper bounds and counts up to each.
type buckets struct {
	le    []float64
	count []float64
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
