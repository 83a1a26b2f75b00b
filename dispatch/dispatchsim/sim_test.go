package dispatchsim

import (
	"flag"
	"reflect"
	"strings"
	"testing"

	"github.com/hexride/hexride/dispatch"
)

// The default is the whole day at a quarter of the fleet and demand, which
// fits the test suite (about 10 s, 90 s under -race: every event crosses
// the router as JSON); the README's table is the full-size day: -scale 1.
var (
	hours = flag.Float64("hours", 24, "simulated hours (24 for the full day)")
	start = flag.Float64("start", 0, "local hour the run starts at")
	scale = flag.Float64("scale", 0.25, "fleet and demand multiplier")
	fleet = flag.Int("fleet", 0, "drivers over the day at scale 1 (0: the default scenario's)")
)

func scenario() Scenario {
	sc := DefaultScenario()
	sc.Hours, sc.StartHour, sc.Scale = *hours, *start, *scale
	if *fleet > 0 {
		sc.Fleet = *fleet
	}
	if sc.Hours >= 24 {
		sc.StartHour = 0
	}
	return sc
}

// TestGreedyVersusBatch replays the same demand and supply under both
// policies and prints the comparison. Batch must keep the match rate and cut
// the mean pickup distance by at least 10%.
func TestGreedyVersusBatch(t *testing.T) {
	sc := scenario()
	greedy := Run(sc, dispatch.Config{Policy: dispatch.PolicyGreedy})
	batch := Run(sc, dispatch.Config{Policy: dispatch.PolicyBatch})
	var b strings.Builder
	WriteTable(&b, greedy, batch)
	t.Logf("%.0f h from %02.0f:00, scale %.2g, seed %d:\n%s", sc.Hours, sc.StartHour, sc.Scale, sc.Seed, b.String())
	for _, r := range []Result{greedy, batch} {
		if len(r.Violations) > 0 {
			t.Errorf("%s broke invariants (%d), first: %s", r.Policy, len(r.Violations), r.Violations[0])
		}
		if r.Requests < 100 || r.Accepted == 0 {
			t.Errorf("%s: %d requests, %d accepted: the scenario is too small to compare", r.Policy, r.Requests, r.Accepted)
		}
	}
	if batch.Requests != greedy.Requests {
		t.Errorf("demand differs between runs: %d vs %d requests", greedy.Requests, batch.Requests)
	}
	if batch.Accepted < greedy.Accepted {
		t.Errorf("batch matched %d, fewer than greedy's %d", batch.Accepted, greedy.Accepted)
	}
	if cut := 1 - batch.MeanPickupM/greedy.MeanPickupM; cut < 0.10 {
		t.Errorf("batch cut mean pickup by %.1f%%, want at least 10%%", 100*cut)
	}
}

// TestSameSeedSameResult: a seeded run is reproducible bit for bit: every
// event the platform published (every decision: each offer, expiry and
// transition, each push) hashes the same on a second run, and another seed
// gives another day.
func TestSameSeedSameResult(t *testing.T) {
	sc := DefaultScenario()
	sc.Hours, sc.StartHour, sc.Scale = 0.5, 17, 0.25
	for _, policy := range []string{dispatch.PolicyGreedy, dispatch.PolicyBatch} {
		a := Run(sc, dispatch.Config{Policy: policy})
		b := Run(sc, dispatch.Config{Policy: policy})
		if a.Events < 1000 || len(a.Violations) > 0 {
			t.Fatalf("%s: %d events, violations %v: too little happened to compare", policy, a.Events, a.Violations)
		}
		if a.Hash != b.Hash || !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: two runs of one seed differ:\n%+v\n%+v", policy, a, b)
		}
		sc.Seed++
		if c := Run(sc, dispatch.Config{Policy: policy}); c.Hash == a.Hash || reflect.DeepEqual(a, c) {
			t.Fatalf("%s: another seed gave the identical result %+v", policy, c)
		}
		sc.Seed--
	}
}
