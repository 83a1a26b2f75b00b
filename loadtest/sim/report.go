package sim

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Report is what a run measured. JSON field names are stable; times and
// latencies are in milliseconds, distances in metres.
type Report struct {
	Target    string    `json:"target"`
	StartedAt time.Time `json:"started_at"`
	ElapsedS  float64   `json:"elapsed_s"`
	// Interrupted is set when the run was stopped before its end.
	Interrupted bool         `json:"interrupted,omitempty"`
	Config      ReportConfig `json:"config"`

	Drivers  DriverStats  `json:"drivers"`
	Pings    PingStats    `json:"pings"`
	Requests RequestStats `json:"requests"`
	Offers   OfferStats   `json:"offers"`
	Latency  LatencyStats `json:"latency_ms"`
	// PickupDistanceM is offer.pickup_distance_m over every offer received.
	PickupDistanceM Percentiles `json:"pickup_distance_m"`

	// Errors counts the server's error answers by code; ErrorsByCommand by
	// "command code" (location for pings, ? when the command is unknown).
	Errors          map[string]int64 `json:"errors"`
	ErrorsByCommand map[string]int64 `json:"errors_by_command"`
	// ClientFailures counts the simulator's own troubles by kind: token,
	// dial, write, decode, stuck (a driver that got no push for a step).
	ClientFailures map[string]int64 `json:"client_failures"`
	// UnfinishedByState counts the unfinished rides by the last trip state
	// their rider saw.
	UnfinishedByState map[string]int64 `json:"unfinished_by_state,omitempty"`
	Connections       ConnStats        `json:"connections"`
	// PlatformCores is the target's CPU over the run, in cores (its
	// process_cpu_seconds_total before and after); 0 without /metrics.
	PlatformCores float64 `json:"platform_cores,omitempty"`
	// Process is the simulator's own footprint: the most phones open at
	// once, and the peak goroutines and heap seen (sampled each second).
	Process ProcessStats `json:"process"`
	// FirstErrors is the first message seen of each error code or failure
	// kind, for diagnosis.
	FirstErrors map[string]string `json:"first_errors,omitempty"`
	// Timeline has a point per second of the run (the first two hours).
	Timeline []TimelinePoint `json:"timeline,omitempty"`
	// RequestLog and PushLog are filled with Config.Record only.
	RequestLog []RequestRecord `json:"request_log,omitempty"`
	PushLog    []PushRecord    `json:"push_log,omitempty"`
}

// ReportConfig is the part of Config a reader of the report needs.
type ReportConfig struct {
	Seed           uint64  `json:"seed"`
	Drivers        int     `json:"drivers"`
	RequestsPerSec float64 `json:"requests_per_sec"`
	DurationS      float64 `json:"duration_s"`
	RampUpS        float64 `json:"ramp_up_s"`
	AcceptProb     float64 `json:"accept_prob"`
	CancelProb     float64 `json:"cancel_prob"`
	SizeKM         float64 `json:"city_km"`
	Speedup        float64 `json:"speedup"`
	IDPrefix       string  `json:"id_prefix"`
}

// DriverStats counts driver phones.
type DriverStats struct {
	Online         int64 `json:"online"` // availability acknowledged
	Failed         int64 `json:"failed"` // never connected
	TripsCompleted int64 `json:"trips_completed"`
	Stuck          int64 `json:"stuck"` // steps given up for want of a trip push
}

// PingStats counts location frames. Accepted means not answered with an
// error.
type PingStats struct {
	Sent           int64   `json:"sent"`
	Accepted       int64   `json:"accepted"`
	SentPerSec     float64 `json:"sent_per_sec"`
	AcceptedPerSec float64 `json:"accepted_per_sec"`
}

// RequestStats follows ride requests. Requests counts those that got a
// trip id; each ends as exactly one of Completed, Cancelled, NoDrivers or
// Unfinished (still active when the run stopped). Sent = Requests + Failed
// + Unanswered.
type RequestStats struct {
	Sent        int64   `json:"sent"`
	Requests    int64   `json:"requests"`
	Failed      int64   `json:"failed"`
	Unanswered  int64   `json:"unanswered"`
	Matched     int64   `json:"matched"` // reached ACCEPTED
	MatchRate   float64 `json:"match_rate"`
	Completed   int64   `json:"completed"`
	Cancelled   int64   `json:"cancelled"`
	NoDrivers   int64   `json:"no_drivers"`
	Unfinished  int64   `json:"unfinished"`
	CancelsSent int64   `json:"cancels_sent"`
	// RidersFailed counts riders that could not connect (no request sent).
	RidersFailed int64 `json:"riders_failed"`
}

// Unsettled is how many requests have no recorded end: 0 after a clean
// drain.
func (s RequestStats) Unsettled() int64 {
	return s.Requests - s.Completed - s.Cancelled - s.NoDrivers - s.Unfinished
}

// OfferStats counts offers as drivers saw them.
type OfferStats struct {
	Received int64 `json:"received"`
	Accepted int64 `json:"accepted"`
	Declined int64 `json:"declined"`
	Late     int64 `json:"late"`       // expired while the driver thought
	Busy     int64 `json:"while_busy"` // declined at once: already on a trip
}

// LatencyStats are the measured latencies.
type LatencyStats struct {
	// RequestToOffer is ride.request sent → the rider's first trip push in
	// state OFFERED.
	RequestToOffer Percentiles `json:"request_to_offer"`
	// ServerRequestToOffer is request→offer as the platform measured it
	// (hexride_request_to_offer_seconds, read from the target's /metrics
	// before and after the run): the ride.request frame's arrival to the
	// offer's write on the driver's socket, in bucket resolution. Absent if
	// the target serves no /metrics on its address.
	ServerRequestToOffer *Percentiles `json:"server_request_to_offer,omitempty"`
	// RequestToAccepted is ride.request sent → the rider's first trip push
	// in state ACCEPTED (or later).
	RequestToAccepted Percentiles `json:"request_to_accepted"`
	// Push is local receive time − a trip push's updated_at: tripstate's
	// transition to the phone, one hop.
	Push Percentiles `json:"push"`
	// DriverLocation is local receive time − a driver.location push's at:
	// the gateway taking the driver's ping to the rider getting it, two
	// hops (the ping consumers fetch in bulk, which adds up to ~190 ms).
	DriverLocation Percentiles `json:"driver_location"`
}

// ConnStats counts socket trouble.
type ConnStats struct {
	Disconnects int64 `json:"disconnects"`
	Reconnects  int64 `json:"reconnects"`
	Lost        int64 `json:"lost"` // phones that could not reconnect
}

// ProcessStats is the simulator process's peak footprint.
type ProcessStats struct {
	PeakPhones     int64   `json:"peak_phones"`
	PeakGoroutines int64   `json:"peak_goroutines"`
	PeakHeapMB     float64 `json:"peak_heap_mb"`
}

// Percentiles summarises a histogram.
type Percentiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
}

// summarise reads percentiles off h, dividing values by div (1000 turns µs
// into ms).
func summarise(h *hdrhistogram.Histogram, div float64) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	r := func(v float64) float64 { return math.Round(v/div*1000) / 1000 }
	return Percentiles{
		Count: h.TotalCount(),
		P50:   r(float64(h.ValueAtQuantile(50))),
		P90:   r(float64(h.ValueAtQuantile(90))),
		P99:   r(float64(h.ValueAtQuantile(99))),
		Max:   r(float64(h.Max())),
		Mean:  r(h.Mean()),
	}
}

func (m *metrics) report(cfg Config, started time.Time, elapsed time.Duration) *Report {
	secs := elapsed.Seconds()
	perSec := func(n int64) float64 {
		if secs <= 0 {
			return 0
		}
		return math.Round(float64(n)/secs*100) / 100
	}
	r := &Report{
		Target:    cfg.Target,
		StartedAt: started.UTC(),
		ElapsedS:  math.Round(secs*1000) / 1000,
		Config: ReportConfig{Seed: cfg.Seed, Drivers: cfg.Drivers, RequestsPerSec: cfg.RequestsPerSec,
			DurationS: cfg.Duration.Seconds(), RampUpS: cfg.RampUp.Seconds(), AcceptProb: cfg.AcceptProb,
			CancelProb: cfg.CancelProb, SizeKM: cfg.SizeKM, Speedup: cfg.Speedup, IDPrefix: cfg.IDPrefix},
		Drivers: DriverStats{Online: m.driversOnline.Load(), Failed: m.driversFailed.Load(),
			TripsCompleted: m.driverTrips.Load(), Stuck: m.stuck.Load()},
		Requests: RequestStats{Sent: m.requestsSent.Load(), Requests: m.requestsAcked.Load(),
			Failed: m.requestsFailed.Load(), Unanswered: m.requestsUnanswered.Load(), Matched: m.matched.Load(),
			Completed: m.completed.Load(), Cancelled: m.cancelled.Load(), NoDrivers: m.noDrivers.Load(),
			Unfinished: m.unfinished.Load(), CancelsSent: m.cancelsSent.Load(), RidersFailed: m.ridersFailed.Load()},
		Offers: OfferStats{Received: m.offers.Load(), Accepted: m.offersAccepted.Load(),
			Declined: m.offersDeclined.Load(), Late: m.offersLate.Load(), Busy: m.offersBusy.Load()},
		Connections: ConnStats{Disconnects: m.disconnects.Load(), Reconnects: m.reconnects.Load(),
			Lost: m.phonesLost.Load()},
	}
	sent, bad := m.pingsSent.Load(), m.pingErrors.Load()
	r.Pings = PingStats{Sent: sent, Accepted: max(sent-bad, 0), SentPerSec: perSec(sent), AcceptedPerSec: perSec(max(sent-bad, 0))}
	if r.Requests.Requests > 0 {
		r.Requests.MatchRate = math.Round(float64(r.Requests.Matched)/float64(r.Requests.Requests)*10000) / 10000
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r.Latency = LatencyStats{RequestToOffer: summarise(m.reqToOffer, 1000),
		RequestToAccepted: summarise(m.reqToAccepted, 1000), Push: summarise(m.push, 1000),
		DriverLocation: summarise(m.location, 1000)}
	r.PickupDistanceM = summarise(m.pickup, 1)
	r.Errors, r.ErrorsByCommand, r.ClientFailures = maps.Clone(m.errs), maps.Clone(m.errsByCmd), maps.Clone(m.client)
	if len(m.first) > 0 {
		r.FirstErrors = maps.Clone(m.first)
	}
	if len(m.unfinishedBy) > 0 {
		r.UnfinishedByState = maps.Clone(m.unfinishedBy)
	}
	r.Timeline = slices.Clone(m.tl.points)
	if cfg.Record {
		r.RequestLog, r.PushLog = m.records()
	}
	return r
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error { return writeIndentedJSON(w, r) }

func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteTable writes the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	c := r.Config
	dur := "until stopped"
	if c.DurationS > 0 {
		dur = fmt.Sprintf("%gs", c.DurationS)
	}
	fmt.Fprintf(tw, "target\t%s (seed %d, ids %s-*)\n", r.Target, c.Seed, c.IDPrefix)
	fmt.Fprintf(tw, "load\t%d drivers, %g requests/s for %s after a %gs ramp; accept %g, cancel %g; %g km city, driving ×%g\n",
		c.Drivers, c.RequestsPerSec, dur, c.RampUpS, c.AcceptProb, c.CancelProb, c.SizeKM, c.Speedup)
	if r.Interrupted {
		fmt.Fprintf(tw, "elapsed\t%.1fs (interrupted)\n", r.ElapsedS)
	} else {
		fmt.Fprintf(tw, "elapsed\t%.1fs\n", r.ElapsedS)
	}
	d := r.Drivers
	fmt.Fprintf(tw, "drivers\t%d online of %d, %d failed to connect, %d trips completed, %d stuck\n",
		d.Online, c.Drivers, d.Failed, d.TripsCompleted, d.Stuck)
	p := r.Pings
	fmt.Fprintf(tw, "pings\t%d sent (%.1f/s), %d accepted (%.1f/s)\n", p.Sent, p.SentPerSec, p.Accepted, p.AcceptedPerSec)
	q := r.Requests
	fmt.Fprintf(tw, "requests\t%d (%d sent, %d failed, %d unanswered); matched %d = %.1f%%\n",
		q.Requests, q.Sent, q.Failed, q.Unanswered, q.Matched, q.MatchRate*100)
	unfinished := ""
	if len(r.UnfinishedByState) > 0 {
		unfinished = " (" + formatCounts(r.UnfinishedByState) + ")"
	}
	fmt.Fprintf(tw, "outcomes\tcompleted %d, cancelled %d (%d cancels sent), no drivers %d, unfinished %d%s\n",
		q.Completed, q.Cancelled, q.CancelsSent, q.NoDrivers, q.Unfinished, unfinished)
	o := r.Offers
	fmt.Fprintf(tw, "offers\t%d received: %d accepted, %d declined, %d expired while thinking, %d while busy\n",
		o.Received, o.Accepted, o.Declined, o.Late, o.Busy)
	cs := r.Connections
	fmt.Fprintf(tw, "sockets\t%d disconnects, %d reconnects, %d lost\n", cs.Disconnects, cs.Reconnects, cs.Lost)
	if r.PlatformCores > 0 {
		fmt.Fprintf(tw, "platform	%.2f cores over the run (its own reading)\n", r.PlatformCores)
	}
	if ps := r.Process; ps.PeakPhones > 0 {
		fmt.Fprintf(tw, "simulator\tpeak %d phones, %d goroutines, %.1f MB heap\n", ps.PeakPhones, ps.PeakGoroutines, ps.PeakHeapMB)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\n%-22s %8s %9s %9s %9s %9s\n", "", "count", "p50", "p90", "p99", "max")
	for _, row := range r.percentileRows() {
		p := row.P
		fmt.Fprintf(w, "%-22s %8d %9.1f %9.1f %9.1f %9.1f\n", row.Name, p.Count, p.P50, p.P90, p.P99, p.Max)
	}

	fmt.Fprintln(w)
	fmt.Fprintf(w, "errors by code: %s\n", formatCounts(r.Errors))
	if len(r.ErrorsByCommand) > 0 {
		fmt.Fprintf(w, "errors by command: %s\n", formatCounts(r.ErrorsByCommand))
	}
	if len(r.ClientFailures) > 0 {
		fmt.Fprintf(w, "client failures: %s\n", formatCounts(r.ClientFailures))
	}
	for _, k := range slices.Sorted(maps.Keys(r.FirstErrors)) {
		fmt.Fprintf(w, "  first %s: %s\n", k, r.FirstErrors[k])
	}
	return nil
}

func formatCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

var htmlReport = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hexride load test</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}
td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child{text-align:left}
pre{background:#f6f6f6;padding:1em;overflow:auto}</style></head><body>
<h1>hexride load test</h1>
<p>{{.Target}}, started {{.StartedAt.Format "2006-01-02 15:04:05Z07:00"}}, {{printf "%.1f" .ElapsedS}} s.</p>
<table><tr><th></th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.P.Count}}</td><td>{{printf "%.1f" .P.P50}}</td><td>{{printf "%.1f" .P.P90}}</td><td>{{printf "%.1f" .P.P99}}</td><td>{{printf "%.1f" .P.Max}}</td></tr>
{{end}}</table>
{{range .Charts}}{{template "chart" .}}{{end}}<h2>Summary</h2><pre>{{.Table}}</pre>
<h2>JSON</h2><pre>{{.JSON}}</pre>
</body></html>
` + chartTemplate))

// WriteHTML writes the report as a self-contained HTML page.
func (r *Report) WriteHTML(w io.Writer) error {
	var table, js strings.Builder
	if err := r.WriteTable(&table); err != nil {
		return err
	}
	if err := r.WriteJSON(&js); err != nil {
		return err
	}
	return htmlReport.Execute(w, map[string]any{
		"Target": r.Target, "StartedAt": r.StartedAt, "ElapsedS": r.ElapsedS,
		"Rows": r.percentileRows(), "Charts": timelineCharts(r.Timeline), "Table": table.String(), "JSON": js.String(),
	})
}

type percentileRow struct {
	Name string
	P    Percentiles
}

func (r *Report) percentileRows() []percentileRow {
	rows := []percentileRow{{"request→offer (ms)", r.Latency.RequestToOffer}}
	if p := r.Latency.ServerRequestToOffer; p != nil {
		rows = append(rows, percentileRow{"  on the server (ms)", *p})
	}
	return append(rows, []percentileRow{
		{"request→accepted (ms)", r.Latency.RequestToAccepted},
		{"trip push latency (ms)", r.Latency.Push},
		{"ping→rider latency (ms)", r.Latency.DriverLocation},
		{"pickup distance (m)", r.PickupDistanceM},
	}...)
}
