package sim

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hexride/hexride/protocol"
)

// TestReportPercentilesAndJSON feeds known values through the recorders and
// checks the report's percentiles (HDR histograms keep 3 significant
// digits), counters and its JSON and table forms.
func TestReportPercentilesAndJSON(t *testing.T) {
	m := newMetrics()
	for i := 1; i <= 1000; i++ {
		m.requestToOffer(time.Duration(i) * time.Millisecond)        // 1..1000 ms
		m.requestToAccepted(time.Duration(i) * 2 * time.Millisecond) // 2..2000 ms
		m.offerReceived(float64(i))                                  // 1..1000 m
	}
	now := time.Now()
	m.pushLatency(now.Add(-40*time.Millisecond).UTC().Format(protocol.TimeFormat), now)
	m.pushLatency("not a time", now) // ignored
	m.locationLatency(now.Add(-70*time.Millisecond).UTC().Format(protocol.TimeFormat), now)
	m.pingsSent.Add(500)
	m.pingErrors.Add(20)
	m.requestsSent.Add(12)
	m.requestsAcked.Add(10)
	m.requestsFailed.Add(2)
	for _, s := range []string{protocol.StateCompleted, protocol.StateCompleted, protocol.StateCompleted, protocol.StateCancelled, protocol.StateNoDrivers} {
		m.outcome(s)
	}
	for range 4 {
		m.rideUnfinished(protocol.StateInProgress)
	}
	m.rideUnfinished(protocol.StateAccepted)
	m.matched.Store(8) // of the 10 requests (the latency loop above counted 1000)
	m.serverError(protocol.MsgOfferAccept, "conflict", "offer o-1 expired")
	m.serverError(protocol.MsgOfferAccept, "conflict", "offer o-2 expired")
	m.serverError(protocol.MsgLocation, "rate_limited", "too many messages; slow down")

	cfg := DefaultConfig().withDefaults()
	rep := m.report(cfg, time.Unix(1_800_000_000, 0), 10*time.Second)

	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > want*0.002+0.001 {
			t.Errorf("%s = %g, want %g (±0.2%%)", name, got, want)
		}
	}
	o := rep.Latency.RequestToOffer
	if o.Count != 1000 {
		t.Errorf("request→offer count %d, want 1000", o.Count)
	}
	near("request→offer p50", o.P50, 500)
	near("request→offer p90", o.P90, 900)
	near("request→offer p99", o.P99, 990)
	near("request→offer max", o.Max, 1000)
	near("request→offer mean", o.Mean, 500.5)
	a := rep.Latency.RequestToAccepted
	near("request→accepted p50", a.P50, 1000)
	near("request→accepted p99", a.P99, 1980)
	near("request→accepted max", a.Max, 2000)
	near("pickup p90", rep.PickupDistanceM.P90, 900)
	if p := rep.Latency.DriverLocation; p.Count != 1 || p.Max < 70 || p.Max > 75 {
		t.Errorf("ping→rider latency %+v, want one value of about 70 ms", p)
	}
	if p := rep.Latency.Push; p.Count != 1 || p.Max < 40 || p.Max > 45 {
		t.Errorf("push latency %+v, want one value of about 40 ms", p)
	}
	if rep.Requests.Matched != 8 || rep.Requests.MatchRate != 0.8 {
		t.Errorf("matched %d, match rate %g; want 8 and 0.8", rep.Requests.Matched, rep.Requests.MatchRate)
	}
	if rep.Pings != (PingStats{Sent: 500, Accepted: 480, SentPerSec: 50, AcceptedPerSec: 48}) {
		t.Errorf("pings %+v", rep.Pings)
	}
	q := rep.Requests
	if q.Requests != 10 || q.Completed != 3 || q.Cancelled != 1 || q.NoDrivers != 1 || q.Unfinished != 5 || q.Unsettled() != 0 {
		t.Errorf("requests %+v, unsettled %d", q, q.Unsettled())
	}
	if rep.Errors["conflict"] != 2 || rep.Errors["rate_limited"] != 1 || rep.ErrorsByCommand["offer.accept conflict"] != 2 {
		t.Errorf("errors %v by protocol.Frame %v", rep.Errors, rep.ErrorsByCommand)
	}

	var js strings.Builder
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(js.String()), &doc); err != nil {
		t.Fatalf("report JSON does not parse: %v\n%s", err, js.String())
	}
	get := func(path ...string) any {
		var v any = doc
		for _, k := range path {
			obj, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = obj[k]
		}
		return v
	}
	for _, c := range []struct {
		path []string
		want any
	}{
		{[]string{"latency_ms", "request_to_offer", "count"}, 1000.0},
		{[]string{"latency_ms", "request_to_offer", "p99"}, o.P99},
		{[]string{"latency_ms", "request_to_accepted", "max"}, a.Max},
		{[]string{"latency_ms", "push", "count"}, 1.0},
		{[]string{"pickup_distance_m", "p50"}, rep.PickupDistanceM.P50},
		{[]string{"pings", "accepted_per_sec"}, 48.0},
		{[]string{"requests", "requests"}, 10.0},
		{[]string{"requests", "no_drivers"}, 1.0},
		{[]string{"errors", "conflict"}, 2.0},
		{[]string{"unfinished_by_state", "IN_PROGRESS"}, 4.0},
		{[]string{"errors_by_command", "location rate_limited"}, 1.0},
		{[]string{"config", "seed"}, 1.0},
		{[]string{"elapsed_s"}, 10.0},
		{[]string{"started_at"}, "2027-01-15T08:00:00Z"},
	} {
		if got := get(c.path...); got != c.want {
			t.Errorf("JSON %s = %v, want %v", strings.Join(c.path, "."), got, c.want)
		}
	}
	var back Report
	if err := json.Unmarshal([]byte(js.String()), &back); err != nil || back.Latency != rep.Latency || back.Requests != rep.Requests {
		t.Errorf("JSON does not round-trip: %v", err)
	}

	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"request→offer (ms)         1000     500.2     900.1     990.2    1000.4",
		"pings     500 sent (50.0/s), 480 accepted (48.0/s)",
		"completed 3, cancelled 1 (0 cancels sent), no drivers 1, unfinished 5 (ACCEPTED 1, IN_PROGRESS 4)",
		"errors by code: conflict 2, rate_limited 1",
		"requests  10 (12 sent, 2 failed, 0 unanswered); matched 8 = 80.0%",
	} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var page strings.Builder
	if err := rep.WriteHTML(&page); err != nil || !strings.Contains(page.String(), "<td>request→offer (ms)</td><td>1000</td>") {
		t.Errorf("HTML report: %v\n%s", err, page.String())
	}
}

func TestEmptyHistogramSummary(t *testing.T) {
	rep := newMetrics().report(DefaultConfig(), time.Now(), 0)
	if rep.Latency.RequestToOffer != (Percentiles{}) || rep.Pings.SentPerSec != 0 || rep.Requests.MatchRate != 0 {
		t.Errorf("empty report: %+v", rep)
	}
	if err := rep.WriteTable(&strings.Builder{}); err != nil {
		t.Fatal(err)
	}
}

// TestTimelinePoints: each tick closes a second with the counters' deltas
// as rates over the time since the last tick and the latencies recorded in
// that second only; the timeline stops growing at its cap.
func TestTimelinePoints(t *testing.T) {
	m := newMetrics()
	t0 := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	m.pingsSent.Add(40) // before the start: not in any second
	m.tick(t0)
	m.pingsSent.Add(100)
	m.requestsAcked.Add(2)
	m.offers.Add(3)
	for _, ms := range []int{10, 20, 30} {
		m.requestToOffer(time.Duration(ms) * time.Millisecond)
	}
	m.pushLatency(t0.Add(1500*time.Millisecond).Format(protocol.TimeFormat), t0.Add(1508*time.Millisecond))
	m.tick(t0.Add(2 * time.Second))
	m.tick(t0.Add(3 * time.Second))
	rep := m.report(DefaultConfig(), t0, 3*time.Second)
	want := []TimelinePoint{
		{T: 2, PingsPerSec: 50, RequestsPerSec: 1, OffersPerSec: 1.5, RequestToOffer50: 20, RequestToOffer99: 30, RequestToOfferMx: 30, PushP99: 8},
		{T: 3},
	}
	if len(rep.Timeline) != len(want) {
		t.Fatalf("timeline %+v, want %+v", rep.Timeline, want)
	}
	for i, p := range rep.Timeline {
		w := want[i]
		near := func(a, b float64) bool { return math.Abs(a-b) <= 0.01*b+0.01 } // 2 significant digits
		if p.T != w.T || p.PingsPerSec != w.PingsPerSec || p.RequestsPerSec != w.RequestsPerSec ||
			p.OffersPerSec != w.OffersPerSec || !near(p.RequestToOffer50, w.RequestToOffer50) ||
			!near(p.RequestToOffer99, w.RequestToOffer99) || !near(p.RequestToOfferMx, w.RequestToOfferMx) ||
			!near(p.PushP99, w.PushP99) {
			t.Errorf("point %d: %+v, want %+v", i, p, w)
		}
	}
	for i := range maxTimeline + 10 {
		m.tick(t0.Add(time.Duration(4+i) * time.Second))
	}
	if n := len(m.report(DefaultConfig(), t0, time.Hour).Timeline); n != maxTimeline {
		t.Errorf("timeline grew to %d points, cap %d", n, maxTimeline)
	}
}

// TestHTMLReportPlotsTimeline: the HTML report draws throughput and latency
// over time as inline SVG (nothing fetched from elsewhere), a line per
// series with a vertex per second (latency lines skip seconds without a
// sample), and no chart for a run without a timeline.
func TestHTMLReportPlotsTimeline(t *testing.T) {
	rep := newMetrics().report(DefaultConfig(), time.Now(), time.Second)
	var b strings.Builder
	if err := rep.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<svg") {
		t.Error("a report without a timeline drew a chart")
	}
	for i := 1; i <= 5; i++ {
		rep.Timeline = append(rep.Timeline, TimelinePoint{T: float64(i), PingsPerSec: 1000 + float64(i),
			RequestsPerSec: 10, OffersPerSec: 9, RequestToOffer50: 4, RequestToOffer99: 18 + float64(i), RequestToOfferMx: 30, PushP99: 12})
	}
	b.Reset()
	if err := rep.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if n := strings.Count(page, "<svg"); n != 3 {
		t.Fatalf("%d charts, want pings, requests and offers, and latency", n)
	}
	if n := strings.Count(page, "<polyline"); n != 7 {
		t.Errorf("%d lines, want 1 + 2 throughput and 4 latency series", n)
	}
	for _, want := range []string{"Pings", "Requests and offers", "Latency", "pings sent", "request→offer p99", "trip push p99", "5 s"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page has no %q", want)
		}
	}
	for _, svg := range strings.Split(page, "<svg")[1:] {
		svg = svg[:strings.Index(svg, "</svg>")]
		for _, bad := range []string{"http://", "https://", "<script", "<image"} {
			if strings.Contains(svg, bad) {
				t.Errorf("a chart refers to %q", bad)
			}
		}
	}
	vertices := func(series string) int {
		i := strings.Index(page, "<title>"+series+"</title>")
		if i < 0 {
			t.Fatalf("no line for %s", series)
		}
		line := page[:i]
		line = line[strings.LastIndex(line, `points="`)+len(`points="`):]
		return len(strings.Fields(line[:strings.Index(line, `"`)]))
	}
	if n := vertices("pings sent"); n != 5 {
		t.Errorf("the pings line has %d vertices, want one per second (5)", n)
	}
	rep.Timeline[2].PushP99 = 0 // no trip push in the third second
	b.Reset()
	if err := rep.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page = b.String()
	if n := vertices("trip push p99"); n != 4 {
		t.Errorf("the trip push line has %d vertices, want 4 (a second without one is skipped)", n)
	}
}
