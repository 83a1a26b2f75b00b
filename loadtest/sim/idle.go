package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"

	"github.com/hexride/hexride/protocol"
)

// IdleConfig is a run that only opens sockets and holds them, to weigh what
// an idle connection costs the gateway.
type IdleConfig struct {
	// Target is the platform's base URL, loopback only (see CheckTarget).
	Target string
	// Conns is how many driver sockets to open and hold. The drivers never
	// go online: the sockets carry no frames at all.
	Conns int
	// Settle is how long to hold the sockets, once all are open, before the
	// second reading, so that handshake garbage is collected (default 10s).
	Settle time.Duration
	// Connecting bounds concurrent token fetches and dials (default 64).
	Connecting int
	// IDPrefix starts the user ids (default: "idle" and the start time).
	IDPrefix string
}

// TargetStats is one reading of the target's /metrics.
type TargetStats struct {
	RSSBytes    float64 `json:"rss_bytes"`
	HeapInuse   float64 `json:"heap_inuse_bytes"`
	Goroutines  float64 `json:"goroutines"`
	Connections float64 `json:"connections"`
}

// IdleReport says what holding Conns idle sockets cost the target.
type IdleReport struct {
	Target            string      `json:"target"`
	Conns             int         `json:"connections_asked"`
	Open              int         `json:"connections_open"`
	Failed            int         `json:"failed"`
	FirstErr          string      `json:"first_error,omitempty"`
	OpenS             float64     `json:"open_seconds"`
	SettleS           float64     `json:"settle_seconds"`
	Before            TargetStats `json:"before"`
	After             TargetStats `json:"after"`
	RSSPerConn        float64     `json:"rss_bytes_per_connection"`
	HeapPerConn       float64     `json:"heap_inuse_bytes_per_connection"`
	GoroutinesPerConn float64     `json:"goroutines_per_connection"`
}

// Idle opens cfg.Conns driver sockets at cfg.Target, holds them for
// cfg.Settle, and reports the change in the target's resident memory, heap
// and goroutines per open socket, read from its /metrics. The target should
// carry no other load (run hexride with HEXRIDE_DEMO_CITY=false) so that the
// difference is the sockets'.
func Idle(ctx context.Context, cfg IdleConfig) (*IdleReport, error) {
	base, err := CheckTarget(cfg.Target)
	if err != nil {
		return nil, err
	}
	if cfg.Conns <= 0 {
		return nil, fmt.Errorf("idle connections must be positive, got %d", cfg.Conns)
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 10 * time.Second
	}
	if cfg.Connecting <= 0 {
		cfg.Connecting = 64
	}
	if cfg.IDPrefix == "" {
		cfg.IDPrefix = "idle" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	}
	phoneCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := newRunner(phoneCtx, Config{Target: cfg.Target, IDPrefix: cfg.IDPrefix, Connecting: cfg.Connecting}, base)
	defer r.http.CloseIdleConnections()
	if err := r.probe(ctx); err != nil {
		return nil, err
	}
	// Tokens come first: minting them is the development token endpoint's
	// work, which production leaves to an auth service, not a socket's cost.
	tokens, err := r.tokens(ctx, cfg)
	if err != nil {
		return nil, err
	}
	metricsURL := strings.TrimSuffix(base.String(), "/") + "/metrics"
	rep := &IdleReport{Target: cfg.Target, Conns: cfg.Conns, SettleS: cfg.Settle.Seconds()}
	if rep.Before, err = readTargetStats(ctx, r.http, metricsURL); err != nil {
		return nil, err
	}

	conns := make([]*websocket.Conn, cfg.Conns)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.CloseNow()
			}
		}
	}()
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.Connecting)
	start := time.Now()
	for i := range conns {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := r.dialIdle(ctx, tokens[i])
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	rep.OpenS = time.Since(start).Seconds()
	rep.Failed = int(failed.Load())
	rep.Open = cfg.Conns - rep.Failed
	if s, ok := firstErr.Load().(string); ok {
		rep.FirstErr = s
	}
	if rep.Open == 0 {
		return rep, fmt.Errorf("no socket opened: %s", rep.FirstErr)
	}
	if !sleepCtx(ctx, cfg.Settle) {
		return rep, ctx.Err()
	}
	if rep.After, err = readTargetStats(ctx, r.http, metricsURL); err != nil {
		return rep, err
	}
	if got := rep.After.Connections - rep.Before.Connections; int(got) != rep.Open {
		return rep, fmt.Errorf("the target counts %v more connections, we hold %d: is something else connecting or leaving?", got, rep.Open)
	}
	n := float64(rep.Open)
	rep.RSSPerConn = (rep.After.RSSBytes - rep.Before.RSSBytes) / n
	rep.HeapPerConn = (rep.After.HeapInuse - rep.Before.HeapInuse) / n
	rep.GoroutinesPerConn = (rep.After.Goroutines - rep.Before.Goroutines) / n
	if rep.RSSPerConn <= 0 {
		// A process keeps the memory of sockets it held before, so more
		// sockets may cost it nothing new: the figure needs a fresh target.
		return rep, errors.New("the target's memory did not grow: measure against a freshly started platform")
	}
	return rep, nil
}

// tokens gets a driver token for each idle socket.
func (r *runner) tokens(ctx context.Context, cfg IdleConfig) ([]string, error) {
	tokens := make([]string, cfg.Conns)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Connecting)
	for i := range tokens {
		g.Go(func() error {
			tok, err := r.token(gctx, protocol.RoleDriver, fmt.Sprintf("%s-d%d", cfg.IDPrefix, i))
			if err != nil {
				return fmt.Errorf("token for idle socket %d: %w", i, err)
			}
			tokens[i] = tok
			return nil
		})
	}
	return tokens, g.Wait()
}

// dialIdle opens a driver socket that will carry nothing. Nobody reads it:
// an idle socket gets no frames, and CloseNow ends it without a handshake.
func (r *runner) dialIdle(ctx context.Context, tok string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := r.dialWS(ctx, r.wsURL, tok)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	return c, nil
}

// readTargetStats reads the process and gateway figures from a Prometheus
// text exposition.
func readTargetStats(ctx context.Context, client *http.Client, url string) (TargetStats, error) {
	families, err := fetchMetrics(ctx, client, url)
	if err != nil {
		return TargetStats{}, err
	}
	return targetStats(families)
}

func parseTargetStats(body io.Reader) (TargetStats, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(body)
	if err != nil {
		return TargetStats{}, fmt.Errorf("parse target metrics: %w", err)
	}
	return targetStats(families)
}

// targetStats picks the process and gateway figures out of a reading.
func targetStats(families map[string]*dto.MetricFamily) (TargetStats, error) {
	sum := func(name string) (float64, error) {
		f, ok := families[name]
		if !ok {
			return 0, fmt.Errorf("target metrics have no %s", name)
		}
		var v float64
		for _, m := range f.GetMetric() {
			v += metricValue(m)
		}
		return v, nil
	}
	var s TargetStats
	var errs []error
	for _, f := range []struct {
		name string
		dst  *float64
	}{
		{"process_resident_memory_bytes", &s.RSSBytes},
		{"go_memstats_heap_inuse_bytes", &s.HeapInuse},
		{"go_goroutines", &s.Goroutines},
		{"hexride_gateway_connections", &s.Connections},
	} {
		v, err := sum(f.name)
		if err != nil && f.name != "hexride_gateway_connections" { // absent until the first socket
			errs = append(errs, err)
		}
		*f.dst = v
	}
	return s, errors.Join(errs...)
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// WriteJSON writes the report as indented JSON.
func (r *IdleReport) WriteJSON(w io.Writer) error { return writeIndentedJSON(w, r) }

// WriteTable writes the report for people.
func (r *IdleReport) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "target\t%s\n", r.Target)
	fmt.Fprintf(tw, "sockets\t%d open of %d asked (%d failed) in %.1fs, held %gs\n", r.Open, r.Conns, r.Failed, r.OpenS, r.SettleS)
	if r.FirstErr != "" {
		fmt.Fprintf(tw, "first error\t%s\n", r.FirstErr)
	}
	fmt.Fprintf(tw, "target RSS\t%.1f MB → %.1f MB: %.1f KiB per socket\n", r.Before.RSSBytes/1e6, r.After.RSSBytes/1e6, r.RSSPerConn/1024)
	fmt.Fprintf(tw, "target heap in use\t%.1f MB → %.1f MB: %.1f KiB per socket\n", r.Before.HeapInuse/1e6, r.After.HeapInuse/1e6, r.HeapPerConn/1024)
	fmt.Fprintf(tw, "target goroutines\t%.0f → %.0f: %.2f per socket\n", r.Before.Goroutines, r.After.Goroutines, r.GoroutinesPerConn)
	return tw.Flush()
}
