package sim

import (
	"math"
	"testing"
	"time"
)

func TestBucketsPercentiles(t *testing.T) {
	inf := math.Inf(1)
	before := buckets{le: []float64{.005, .01, .02, inf}, count: []float64{10, 10, 10, 10}}
	// Since before: 50 under 5 ms, 40 in 5–10 ms, 10 in 10–20 ms.
	after := buckets{le: []float64{.005, .01, .02, inf}, count: []float64{60, 100, 110, 110}}
	p := after.since(before).percentiles()
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"count", float64(p.Count), 100},
		{"p50", p.P50, 5},
		{"p90", p.P90, 10},
		{"p99", p.P99, 19},
		{"max", p.Max, 20},
	} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if q := (buckets{le: []float64{.01, inf}, count: []float64{0, 5}}).quantile(0.5); q != .01 {
		t.Errorf("overflow bucket quantile = %v, want the last finite bound", q)
	}
}

func TestProfiles(t *testing.T) {
	c, ok := Profile("city")
	if !ok || c.Drivers != 10_000 || c.RequestsPerSec != 10 || c.PingMin != 4*time.Second || c.PingMax != 4*time.Second ||
		c.Duration != time.Minute {
		t.Errorf("city profile %+v", c)
	}
	if _, ok := Profile("nope"); ok {
		t.Error("an unknown profile was accepted")
	}
	for _, args := range [][]string{{"-profile", "city"}, {"--profile=city"}, {"-drivers", "5", "-profile=city"}} {
		if got := profileOf(args); got != "city" {
			t.Errorf("profileOf(%q) = %q", args, got)
		}
	}
}
