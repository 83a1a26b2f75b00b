package sim

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// TimelinePoint is one second of a run: throughput over the second before
// T and the latencies recorded in it (milliseconds; 0 when none were).
type TimelinePoint struct {
	T                float64 `json:"t_s"`
	PingsPerSec      float64 `json:"pings_per_sec"`
	RequestsPerSec   float64 `json:"requests_per_sec"`
	OffersPerSec     float64 `json:"offers_per_sec"`
	RequestToOffer50 float64 `json:"request_to_offer_p50_ms"`
	RequestToOffer99 float64 `json:"request_to_offer_p99_ms"`
	RequestToOfferMx float64 `json:"request_to_offer_max_ms"`
	PushP99          float64 `json:"trip_push_p99_ms"`
}

// maxTimeline bounds the timeline (two hours of seconds), so the endless
// demo city does not grow it for ever; later seconds are not kept.
const maxTimeline = 2 * 60 * 60

// timeline collects a point each second: counters are read as deltas,
// latencies from histograms of the second that are then reset.
type timeline struct {
	start, last             time.Time
	pings, requests, offers int64
	offer, push             *hdrhistogram.Histogram // µs, this second's
	points                  []TimelinePoint
}

func newTimeline() *timeline {
	return &timeline{offer: hdrhistogram.New(1, maxLatencyMicros, 2), push: hdrhistogram.New(1, maxLatencyMicros, 2)}
}

// tick closes the second that ends at now; m.mu is held.
func (tl *timeline) tick(now time.Time, pings, requests, offers int64) {
	if tl.start.IsZero() {
		tl.start, tl.last = now, now
		tl.pings, tl.requests, tl.offers = pings, requests, offers
		tl.offer.Reset()
		tl.push.Reset()
		return
	}
	dt := now.Sub(tl.last).Seconds()
	if dt <= 0 {
		return
	}
	rate := func(n, was int64) float64 { return round2(float64(n-was) / dt) }
	ms := func(h *hdrhistogram.Histogram, q float64) float64 {
		if h.TotalCount() == 0 {
			return 0
		}
		if q == 100 {
			return round2(float64(h.Max()) / 1000)
		}
		return round2(float64(h.ValueAtQuantile(q)) / 1000)
	}
	if len(tl.points) < maxTimeline {
		tl.points = append(tl.points, TimelinePoint{
			T: round2(now.Sub(tl.start).Seconds()), PingsPerSec: rate(pings, tl.pings),
			RequestsPerSec: rate(requests, tl.requests), OffersPerSec: rate(offers, tl.offers),
			RequestToOffer50: ms(tl.offer, 50), RequestToOffer99: ms(tl.offer, 99), RequestToOfferMx: ms(tl.offer, 100),
			PushP99: ms(tl.push, 99),
		})
	}
	tl.last, tl.pings, tl.requests, tl.offers = now, pings, requests, offers
	tl.offer.Reset()
	tl.push.Reset()
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// tick adds the timeline's point for the second ending now.
func (m *metrics) tick(now time.Time) {
	pings, requests, offers := m.pingsSent.Load(), m.requestsAcked.Load(), m.offers.Load()
	m.mu.Lock()
	m.tl.tick(now, pings, requests, offers)
	m.mu.Unlock()
}

// chart is one SVG plot of the HTML report.
type chart struct {
	Title, Unit   string
	Width, Height int
	YTicks        []axisTick
	XTicks        []axisTick
	Series        []chartSeries
}

type axisTick struct {
	At            float64
	Label, Anchor string
}

type chartSeries struct {
	Name, Color string
	Points      string // SVG polyline points
	LegendY     int
}

const (
	chartW, chartH = 760, 220
	chartLeft      = 56
	chartBottom    = 24
)

// timelineCharts draws the report's throughput and latency over time.
func timelineCharts(points []TimelinePoint) []chart {
	if len(points) == 0 {
		return nil
	}
	pick := func(f func(TimelinePoint) float64) []float64 {
		vs := make([]float64, len(points))
		for i, p := range points {
			vs[i] = f(p)
		}
		return vs
	}
	// A latency line skips the seconds without a sample rather than
	// dropping to zero in them.
	type line struct {
		name, color string
		v           []float64
		gaps        bool
	}
	draw := func(title, unit string, lines []line) chart {
		top := 0.0
		for _, l := range lines {
			for _, v := range l.v {
				top = max(top, v)
			}
		}
		top = niceCeil(top)
		end := max(points[len(points)-1].T, 1)
		x := func(t float64) float64 { return chartLeft + t/end*float64(chartW-chartLeft-8) }
		y := func(v float64) float64 { return float64(chartH-chartBottom) - v/top*float64(chartH-chartBottom-8) }
		c := chart{Title: title, Unit: unit, Width: chartW, Height: chartH}
		for _, f := range []float64{0, 0.5, 1} {
			c.YTicks = append(c.YTicks, axisTick{At: y(top * f), Label: trimFloat(top * f)})
		}
		for i, f := range []float64{0, 0.5, 1} {
			c.XTicks = append(c.XTicks, axisTick{At: x(end * f), Label: trimFloat(math.Round(end*f)) + " s",
				Anchor: []string{"start", "middle", "end"}[i]})
		}
		for i, l := range lines {
			var b strings.Builder
			for j, v := range l.v {
				if l.gaps && v == 0 {
					continue
				}
				fmt.Fprintf(&b, "%.1f,%.1f ", x(points[j].T), y(v))
			}
			c.Series = append(c.Series, chartSeries{Name: l.name, Color: l.color, Points: strings.TrimSpace(b.String()), LegendY: 16 + 16*i})
		}
		return c
	}
	return []chart{
		draw("Pings", "sent per second", []line{
			{"pings sent", "#1f77b4", pick(func(p TimelinePoint) float64 { return p.PingsPerSec }), false},
		}),
		draw("Requests and offers", "per second", []line{
			{"requests", "#ff7f0e", pick(func(p TimelinePoint) float64 { return p.RequestsPerSec }), false},
			{"offers", "#2ca02c", pick(func(p TimelinePoint) float64 { return p.OffersPerSec }), false},
		}),
		draw("Latency", "ms", []line{
			{"request→offer p50", "#2ca02c", pick(func(p TimelinePoint) float64 { return p.RequestToOffer50 }), true},
			{"request→offer p99", "#d62728", pick(func(p TimelinePoint) float64 { return p.RequestToOffer99 }), true},
			{"request→offer max", "#9467bd", pick(func(p TimelinePoint) float64 { return p.RequestToOfferMx }), true},
			{"trip push p99", "#1f77b4", pick(func(p TimelinePoint) float64 { return p.PushP99 }), true},
		}),
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

var chartTemplate = `{{define "chart"}}<h2>{{.Title}} <small>({{.Unit}})</small></h2>
<svg class="chart" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="{{.Title}} over time">
{{range .YTicks}}<line x1="56" x2="{{$.Width}}" y1="{{.At}}" y2="{{.At}}" stroke="#ddd"/><text x="50" y="{{.At}}" text-anchor="end" dominant-baseline="middle" font-size="11">{{.Label}}</text>
{{end}}{{range .XTicks}}<text x="{{.At}}" y="{{$.Height}}" text-anchor="{{.Anchor}}" font-size="11" dy="-4">{{.Label}}</text>
{{end}}{{range .Series}}<polyline fill="none" stroke="{{.Color}}" stroke-width="1.5" points="{{.Points}}"><title>{{.Name}}</title></polyline>
<text x="{{$.Width}}" y="{{.LegendY}}" dx="-8" text-anchor="end" font-size="12" fill="{{.Color}}">{{.Name}}</text>
{{end}}</svg>
{{end}}`
