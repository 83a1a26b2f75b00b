package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	rtmetrics "runtime/metrics"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/hexride/hexride/protocol"
)

// Random streams: every phone and the arrival process draw from their own
// generator, seeded by Config.Seed and the stream, so a phone's choices do
// not depend on how goroutines interleave.
const (
	streamArrivals = 1
	streamDriver   = 1 << 32
	streamRider    = 2 << 32
)

type runner struct {
	cfg      Config
	city     *City
	base     *url.URL
	wsURL    string
	tokenURL string
	// targets are every gateway's endpoints; the first is wsURL, tokenURL.
	targets  []endpoint
	http     *http.Client // tokens
	wsClient *http.Client // WebSocket handshakes
	m        *metrics
	// ctx is the phones' context. It outlives the caller's ctx so that the
	// phones can say goodbye (availability false, a normal close), and is
	// cancelled last.
	ctx     context.Context
	connSem chan struct{}

	mu       sync.Mutex
	phones   map[*phone]struct{}
	stopping bool
	wg       sync.WaitGroup
}

// Run drives simulated phones at cfg.Target and returns what it measured.
// Drivers connect over cfg.RampUp; riders then request at
// cfg.RequestsPerSec for cfg.Duration, and get up to cfg.Drain to finish
// their rides; then every phone hangs up. With Duration 0 it runs until ctx
// ends (the endless demo city) and returns a nil error then. When ctx ends
// a bounded run early, Run returns the report so far with ctx's error.
// progress, if not nil, gets a live progress bar with the running figures.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, _ := CheckTarget(cfg.Target)
	phCtx, cancelPhones := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPhones()
	r := newRunner(phCtx, cfg, base)
	defer r.http.CloseIdleConnections()
	if err := r.probe(ctx); err != nil {
		return nil, err
	}

	metricsURL := strings.TrimSuffix(base.String(), "/") + "/metrics"
	before := readServer(ctx, r.http, metricsURL)
	started := time.Now()
	r.m.tick(started)
	stopSampling := r.sample()
	bar := newProgress(progress, cfg, r.m, started)
	rampDone := make(chan struct{})
	go func() {
		defer close(rampDone)
		r.rampDrivers(ctx)
	}()
	interrupted := !sleepCtx(ctx, cfg.RampUp)
	if !interrupted {
		interrupted = !r.arrivals(ctx, started.Add(cfg.RampUp))
	}
	if !interrupted && cfg.Duration > 0 {
		bar.draining()
		interrupted = !r.drain(ctx, time.Now().Add(cfg.Drain))
	}
	<-rampDone
	bar.finish()
	r.stop(cancelPhones)
	elapsed := time.Since(started)
	r.m.tick(started.Add(elapsed))
	rep := r.m.report(cfg, started, elapsed)
	rep.Process = stopSampling()
	after := readServer(ctx, r.http, metricsURL)
	if before.requestToOfferOK && after.requestToOfferOK {
		p := after.requestToOffer.since(before.requestToOffer).percentiles()
		rep.Latency.ServerRequestToOffer = &p
	}
	if before.cpuOK && after.cpuOK {
		rep.PlatformCores = (after.cpu - before.cpu) / elapsed.Seconds()
	}
	if cfg.Duration == 0 {
		return rep, nil // the endless city ends with ctx
	}
	if interrupted {
		rep.Interrupted = true
		return rep, ctx.Err()
	}
	if cfg.Drivers > 0 && rep.Drivers.Online == 0 {
		return rep, fmt.Errorf("no driver came online (first failures: %v)", rep.FirstErrors)
	}
	return rep, nil
}

// endpoint is one gateway's socket and token URLs.
type endpoint struct{ ws, token string }

func endpointOf(base *url.URL) endpoint {
	ws := *base
	ws.Scheme = map[string]string{"http": "ws", "https": "wss"}[base.Scheme]
	ws.Path = strings.TrimSuffix(base.Path, "/") + "/v1/ws"
	ws.RawQuery = ""
	tok := *base
	tok.Path = strings.TrimSuffix(base.Path, "/") + "/v1/dev/token"
	tok.RawQuery = ""
	return endpoint{ws: ws.String(), token: tok.String()}
}

func newRunner(ctx context.Context, cfg Config, base *url.URL) *runner {
	ep := endpointOf(base)
	targets := []endpoint{ep}
	if len(cfg.Targets) > 1 {
		targets = targets[:0]
		for _, t := range cfg.Targets {
			u, _ := CheckTarget(t) // checked by Validate
			targets = append(targets, endpointOf(u))
		}
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &runner{
		cfg: cfg, city: NewCity(cfg.Center, cfg.SizeKM), base: base, wsURL: ep.ws, tokenURL: ep.token, targets: targets,
		http: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			Proxy: nil, DialContext: dialer.DialContext, MaxIdleConns: 64, MaxIdleConnsPerHost: 64,
			IdleConnTimeout: 30 * time.Second}},
		// Upgraded connections are never pooled: no idle pool, no proxy. The
		// transport's buffers stay under the socket for its whole life, so
		// they are kept small (frames are at most 4 KiB and rarely 1).
		wsClient: &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: dialer.DialContext,
			DisableKeepAlives: true, ReadBufferSize: 1024, WriteBufferSize: 1024}},
		m:       newMetrics(),
		ctx:     ctx,
		connSem: make(chan struct{}, cfg.Connecting),
		phones:  map[*phone]struct{}{},
	}
}

// token gets a development token from the target.
func (r *runner) token(ctx context.Context, role, sub string) (string, error) {
	return r.tokenFrom(ctx, r.tokenURL, role, sub)
}

// tokenFrom gets a development token from one gateway.
func (r *runner) tokenFrom(ctx context.Context, tokenURL, role, sub string) (string, error) {
	body, _ := json.Marshal(map[string]string{"role": role, "sub": sub})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8192))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("POST %s: %s: %s", tokenURL, resp.Status, strings.TrimSpace(string(b)))
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Token == "" {
		return "", fmt.Errorf("POST %s: no token in %.200q", tokenURL, b)
	}
	return out.Token, nil
}

// probe checks the target answers and has development tokens, so a wrong
// target fails at once with a clear message instead of as N dial errors.
func (r *runner) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	retryUntil := time.Now().Add(2 * time.Second)
	for _, ep := range r.targets {
		if err := r.probeOne(ctx, ep.token, retryUntil); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) probeOne(ctx context.Context, tokenURL string, retryUntil time.Time) error {
	for {
		_, err := r.tokenFrom(ctx, tokenURL, protocol.RoleViewer, r.cfg.IDPrefix+"-probe")
		if err == nil {
			return nil
		}
		// A platform that is still starting refuses connections for a
		// moment; anything else (or a refusal that lasts) is an answer.
		var opErr *net.OpError
		if !errors.As(err, &opErr) || time.Now().After(retryUntil) || !sleepCtx(ctx, 250*time.Millisecond) {
			return fmt.Errorf("target %s does not hand out development tokens (is `go run ./cmd/hexride` running there, with HEXRIDE_DEV_AUTH on?): %w", strings.TrimSuffix(tokenURL, "/v1/dev/token"), err)
		}
	}
}

// spawn starts a phone's goroutine unless the run is stopping.
func (r *runner) spawn(p *phone) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return false
	}
	r.phones[p] = struct{}{}
	if p.role == protocol.RoleRider {
		r.m.ridersActive.Add(1)
	}
	r.wg.Add(1)
	go p.run()
	return true
}

// forget is the last thing a phone's goroutine does.
func (r *runner) forget(p *phone) {
	r.mu.Lock()
	delete(r.phones, p)
	r.mu.Unlock()
	if p.role == protocol.RoleRider {
		r.m.ridersActive.Add(-1)
	}
	r.wg.Done()
}

// rampDrivers starts the drivers evenly over the ramp-up.
func (r *runner) rampDrivers(ctx context.Context) {
	n := r.cfg.Drivers
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(float64(r.cfg.RampUp) * float64(i) / float64(n)))
		if d := time.Until(at); d > 0 && !sleepCtx(ctx, d) {
			return
		}
		if !r.spawn(&newDriver(r, i).phone) {
			return
		}
	}
}

// arrivals starts riders as a Poisson process from start until the window
// closes, the cap is reached or ctx ends; it reports false if ctx ended.
func (r *runner) arrivals(ctx context.Context, start time.Time) bool {
	cfg := r.cfg
	var end <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(time.Until(start.Add(cfg.Duration)))
		defer t.Stop()
		end = t.C
	}
	if cfg.RequestsPerSec <= 0 {
		select {
		case <-ctx.Done():
			return false
		case <-end:
			return true
		}
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, streamArrivals))
	next := start
	for i := 0; cfg.MaxRequests == 0 || i < cfg.MaxRequests; i++ {
		next = next.Add(time.Duration(rng.ExpFloat64() / cfg.RequestsPerSec * float64(time.Second)))
		if cfg.Duration > 0 && next.After(start.Add(cfg.Duration)) {
			break
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-end:
			t.Stop()
			return true
		case <-t.C:
		}
		r.spawn(&newRider(r, i).phone)
	}
	if cfg.Duration == 0 { // capped endless run: wait for ctx
		<-ctx.Done()
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-end:
		return true
	}
}

// drain waits until every rider has hung up or the deadline passes; it
// reports false if ctx ended.
func (r *runner) drain(ctx context.Context, deadline time.Time) bool {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for r.m.ridersActive.Load() > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// stop hangs up every phone: drivers go off duty and every socket closes
// normally, a few hundred at a time; whatever is still running after 10s is
// cut off.
func (r *runner) stop(cancelPhones context.CancelFunc) {
	r.mu.Lock()
	r.stopping = true
	phones := make([]*phone, 0, len(r.phones))
	for p := range r.phones {
		phones = append(phones, p)
	}
	r.mu.Unlock()

	sem := make(chan struct{}, 256)
	var closers sync.WaitGroup
	for _, p := range phones {
		sem <- struct{}{}
		closers.Go(func() {
			defer func() { <-sem }()
			p.shutdown()
		})
	}
	done := make(chan struct{})
	go func() {
		closers.Wait()
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cancelPhones()
		<-done
	}
}

// sample watches this process's peak phones, goroutines and heap every
// second until the returned function is called.
func (r *runner) sample() func() ProcessStats {
	var peak ProcessStats
	stop, done := make(chan struct{}), make(chan struct{})
	samples := []rtmetrics.Sample{{Name: "/sched/goroutines:goroutines"}, {Name: "/memory/classes/heap/objects:bytes"}}
	take := func() {
		r.m.tick(time.Now())
		rtmetrics.Read(samples)
		r.mu.Lock()
		phones := int64(len(r.phones))
		r.mu.Unlock()
		peak.PeakPhones = max(peak.PeakPhones, phones)
		if samples[0].Value.Kind() == rtmetrics.KindUint64 {
			peak.PeakGoroutines = max(peak.PeakGoroutines, int64(samples[0].Value.Uint64()))
		}
		if samples[1].Value.Kind() == rtmetrics.KindUint64 {
			peak.PeakHeapMB = max(peak.PeakHeapMB, math.Round(float64(samples[1].Value.Uint64())/(1<<20)*10)/10)
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				take()
			}
		}
	}()
	return func() ProcessStats {
		close(stop)
		<-done
		return peak
	}
}

// progress is the live progress bar.
type progress struct {
	w       io.Writer
	bar     *progressbar.ProgressBar
	cfg     Config
	m       *metrics
	started time.Time
	total   int64
	stop    chan struct{}
	done    chan struct{}

	mu        sync.Mutex
	tail      string
	lastPings int64
	last      time.Time
}

func newProgress(w io.Writer, cfg Config, m *metrics, started time.Time) *progress {
	p := &progress{w: w, cfg: cfg, m: m, started: started, last: started, total: -1,
		stop: make(chan struct{}), done: make(chan struct{})}
	if w == nil {
		close(p.done)
		return p
	}
	if cfg.Duration > 0 {
		p.total = (cfg.RampUp + cfg.Duration).Milliseconds() / 100 // tenths of a second
	}
	p.bar = progressbar.NewOptions64(p.total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(20),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionSetRenderBlankState(true),
	)
	go func() {
		defer close(p.done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case now := <-t.C:
				p.render(now)
			}
		}
	}()
	return p
}

// render shows the running figures.
func (p *progress) render(now time.Time) {
	l := p.m.live()
	p.mu.Lock()
	rate := 0.0
	if dt := now.Sub(p.last).Seconds(); dt > 0 {
		rate = float64(l.pings-p.lastPings) / dt
	}
	p.lastPings, p.last = l.pings, now
	tail := p.tail
	p.mu.Unlock()
	p.bar.Describe(fmt.Sprintf("drivers %d/%d  requests %d  matched %d  ended %d  riders %d  pings %.0f/s  offer p50 %s  errors %d%s",
		l.online, p.cfg.Drivers, l.requests, l.matched, l.ended, l.active, rate,
		l.offerP50.Round(time.Millisecond), l.errors, tail))
	if p.total > 0 {
		_ = p.bar.Set64(min(now.Sub(p.started).Milliseconds()/100, p.total))
	} else {
		_ = p.bar.Add64(1)
	}
}

func (p *progress) draining() {
	p.mu.Lock()
	p.tail = "  draining"
	p.mu.Unlock()
}

func (p *progress) finish() {
	if p.bar == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.mu.Lock()
	p.tail = ""
	p.lastPings, p.last = 0, p.started // the last line shows the run's average
	p.mu.Unlock()
	p.render(time.Now())
	_ = p.bar.Exit()
	fmt.Fprintln(p.w)
}
