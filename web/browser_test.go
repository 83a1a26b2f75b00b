package web_test

// These tests open the live map in real headless Chromium (Debian's
// chromium, driven by chromedp) against the real platform: the in-process
// services on an embedded kfake broker over TCP and a real redis-server.
// They fail, loudly, when chromium is missing: .ci/run installs it.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/events/kafka"
	"github.com/hexride/hexride/internal/devbroker"
	"github.com/hexride/hexride/internal/platform"
	"github.com/hexride/hexride/internal/platformtest"
	"github.com/hexride/hexride/internal/redistest"
	"github.com/hexride/hexride/loadtest/sim"
	"github.com/hexride/hexride/ride"
	"github.com/hexride/hexride/web"
)

const chromiumPath = "/usr/bin/chromium"

// ScreenshotEnv names a file the functional test also writes its
// screenshot to (docs/map.png is made this way; see docs/map.md).
const ScreenshotEnv = "HEXRIDE_WRITE_SCREENSHOT"

// startPlatform runs the services on a fresh broker and redis-server with
// the demo city's streets, and returns the HTTP address.
func startPlatform(t *testing.T, city *web.City, services ...string) (addr string, brokers []string) {
	t.Helper()
	broker, err := devbroker.StartLocal(0, 4, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	rs := redistest.Start(t)
	cfg := platform.Config{Addr: "127.0.0.1:0", KafkaBrokers: strings.Join(broker.Addrs(), ","), KafkaPartitions: 4,
		RedisAddr: rs.Addr, OfferTimeout: 10 * time.Second, SearchDeadline: time.Minute, StaleAfter: 15 * time.Second,
		MaxPickupM: 5000, DevAuth: true, LogLevel: "warn", MaxSpeedKMH: 2000}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	run := platformtest.Start(t, func(ctx context.Context, onReady func(*platform.Running)) error {
		return platform.Run(ctx, cfg, logger, platform.Options{Services: services, MapCity: city, OnReady: onReady})
	})
	return run.Addr, broker.Addrs()
}

// demoCity is the simulator's street grid, as the one-command run draws it.
func demoCity(center sim.LatLng, sizeKM float64) *web.City {
	c := sim.NewCity(center, sizeKM)
	var streets []web.Street
	for _, s := range c.Streets() {
		streets = append(streets, web.Street{A: ride.LatLng(s.A), B: ride.LatLng(s.B), Arterial: s.Arterial})
	}
	return &web.City{Center: ride.LatLng(center), Streets: streets}
}

// browser is one headless Chromium tab that records every console error,
// uncaught exception, browser-log error and failed request.
type browser struct {
	t    *testing.T
	ctx  context.Context
	mu   sync.Mutex
	errs []string
}

func newBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("headless Chromium is required at %s (Debian: apt-get install chromium; .ci/run installs it): %v", chromiumPath, err)
	}
	// Exactly these flags, and a fresh profile: nothing from the machine's
	// browser state leaks into the test.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	if err := chromedp.Listen(ctx, b.record); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("enable network events: %v", err)
	}
	return b
}

func (b *browser) record(e any) {
	var msg string
	switch e := e.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			msg = "console." + string(e.Type) + ": " + strings.Join(parts, " ")
		}
	case *runtime.EventExceptionThrown:
		msg = "uncaught exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
	case *log.EventEntryAdded:
		if e.Entry.Level == log.EntryLevelError {
			msg = "browser log error (" + string(e.Entry.Source) + "): " + e.Entry.Text + " " + e.Entry.URL
		}
	case *network.EventLoadingFailed:
		if !e.Canceled {
			msg = fmt.Sprintf("request failed (%s): %s", e.Type, e.ErrorText)
		}
	case *network.EventResponseReceived:
		if e.Response.Status >= 400 {
			msg = fmt.Sprintf("HTTP %d for %s", e.Response.Status, e.Response.URL)
		}
	}
	if msg != "" {
		b.mu.Lock()
		b.errs = append(b.errs, msg)
		b.mu.Unlock()
	}
}

func (b *browser) problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// eval runs JavaScript in the page, failing the test on error.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds.
func (b *browser) waitFor(what, expr string, within time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok := eval[bool](b, expr)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waited %s for %s (%s); page problems: %v", within, what, expr, b.problems())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type pageDriver struct {
	Slot  int     `json:"slot"`
	State int     `json:"state"`
	Lat   float64 `json:"lat"`
	Lng   float64 `json:"lng"`
}

// TestLiveMapInChromium: with simulated phones driving the real platform,
// the page loads cleanly, shows every driver, moves them, draws the
// hexagons, and shows a driver's details on click.
func TestLiveMapInChromium(t *testing.T) {
	cfg := sim.DefaultConfig()
	city := demoCity(cfg.Center, cfg.SizeKM)
	addr, _ := startPlatform(t, city)

	const drivers = 60
	cfg.Target = "http://" + addr
	cfg.Drivers = drivers
	cfg.RequestsPerSec = 1
	cfg.Duration = 0
	cfg.RampUp = time.Second
	cfg.Speedup = 5
	cfg.IDPrefix = "mapcity"
	simCtx, stopSim := context.WithCancel(context.Background())
	simDone := make(chan error, 1)
	go func() {
		_, err := sim.Run(simCtx, cfg, nil)
		simDone <- err
	}()
	t.Cleanup(func() {
		stopSim()
		if err := <-simDone; err != nil {
			t.Errorf("simulator: %v", err)
		}
	})

	b := newBrowser(t, 1440, 960)
	if _, err := chromedp.Run(b.ctx, chromedp.Steps(chromedp.EmulateViewport(1440, 960), chromedp.Navigate("http://"+addr+"/"))); err != nil {
		t.Fatalf("open the map: %v", err)
	}
	b.waitFor("the page to connect", `window.hexride && window.hexride.ready && document.getElementById("status").textContent === "live"`, 20*time.Second)
	b.waitFor(fmt.Sprintf("%d drivers on the map", drivers), fmt.Sprintf(`window.hexride.drivers().length === %d`, drivers), 30*time.Second)
	b.waitFor("the panel to count them", fmt.Sprintf(`document.getElementById("f-drivers").textContent === "%d"`, drivers), 5*time.Second)
	if n := eval[int](b, `window.hexride.drawn().drivers`); n != drivers {
		t.Errorf("the page draws %d driver markers, want %d", n, drivers)
	}

	// Positions change over a few seconds.
	before := eval[[]pageDriver](b, `window.hexride.drivers()`)
	time.Sleep(4 * time.Second)
	after := eval[[]pageDriver](b, `window.hexride.drivers()`)
	at := map[int]pageDriver{}
	for _, d := range before {
		at[d.Slot] = d
	}
	moved := 0
	for _, d := range after {
		if p, ok := at[d.Slot]; ok && (p.Lat != d.Lat || p.Lng != d.Lng) {
			moved++
		}
	}
	t.Logf("%d of %d drivers moved in 4 s", moved, len(after))
	if moved < drivers/2 {
		t.Errorf("only %d of %d drivers moved in 4 s", moved, drivers)
	}

	// The hexagon layer renders, and toggles to demand.
	b.waitFor("supply hexagons drawn", `window.hexride.drawn().hex > 0`, 5*time.Second)
	if _, err := chromedp.Run(b.ctx, chromedp.Click(chromedp.CSS(`button[data-layer="demand"]`))); err != nil {
		t.Fatalf("click demand: %v", err)
	}
	b.waitFor("the demand legend", `document.getElementById("legend-hex").textContent.includes("open requests")`, 5*time.Second)
	if _, err := chromedp.Run(b.ctx, chromedp.Click(chromedp.CSS(`button[data-layer="supply"]`))); err != nil {
		t.Fatalf("click supply: %v", err)
	}
	b.waitFor("supply hexagons drawn again", `window.hexride.drawn().hex > 0 && document.getElementById("legend-hex").textContent.includes("available drivers")`, 5*time.Second)

	// Clicking a driver shows its details.
	type point struct{ X, Y float64 }
	slot := after[0].Slot
	p := eval[point](b, fmt.Sprintf(`window.hexride.screenOf(%d)`, slot))
	if _, err := chromedp.Run(b.ctx, chromedp.MouseClickXY(p.X, p.Y)); err != nil {
		t.Fatalf("click the driver: %v", err)
	}
	b.waitFor("the driver's details", `!document.getElementById("detail").hidden && document.getElementById("detail-title").textContent.startsWith("Driver mapcity")`, 10*time.Second)
	body := eval[string](b, `document.getElementById("detail-body").textContent`)
	for _, want := range []string{"state", "last ping", "Recent history"} {
		if !strings.Contains(body, want) {
			t.Errorf("driver details lack %q: %s", want, body)
		}
	}
	t.Logf("details: %s — %.200s", eval[string](b, `document.getElementById("detail-title").textContent`), body)

	// Clicking a trip's drop-off shows the trip, and never its rider.
	b.waitFor("trips on the map", `window.hexride.drawn().trips >= 3`, 30*time.Second)
	type pageTrip struct {
		Slot    int    `json:"slot"`
		State   string `json:"state"`
		Dropoff point  `json:"dropoff"`
	}
	tr := eval[[]pageTrip](b, `window.hexride.trips()`)[0]
	if _, err := chromedp.Run(b.ctx, chromedp.MouseClickXY(tr.Dropoff.X, tr.Dropoff.Y)); err != nil {
		t.Fatalf("click the trip: %v", err)
	}
	b.waitFor("the trip's details", `!document.getElementById("detail").hidden && document.getElementById("detail-title").textContent.startsWith("Trip t-")`, 10*time.Second)
	tripBody := eval[string](b, `document.getElementById("detail-body").textContent`)
	for _, want := range []string{"state", "drop-off", "REQUESTED (ride.request)"} {
		if !strings.Contains(tripBody, want) {
			t.Errorf("trip details lack %q: %s", want, tripBody)
		}
	}
	if strings.Contains(tripBody, "mapcity-r") {
		t.Errorf("trip details name the rider: %s", tripBody)
	}
	t.Logf("trip details: %s — %.200s", eval[string](b, `document.getElementById("detail-title").textContent`), tripBody)

	// Back to a driver for the picture, then take it.
	p = eval[point](b, fmt.Sprintf(`window.hexride.screenOf(%d)`, slot))
	if _, err := chromedp.Run(b.ctx, chromedp.MouseClickXY(p.X, p.Y)); err != nil {
		t.Fatalf("click the driver: %v", err)
	}
	b.waitFor("the driver's details again", `document.getElementById("detail-title").textContent.startsWith("Driver mapcity")`, 10*time.Second)
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	out := filepath.Join(t.TempDir(), "map.png")
	if dst := os.Getenv(ScreenshotEnv); dst != "" {
		out = dst
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatalf("write screenshot: %v", err)
	}
	t.Logf("screenshot (%d bytes) written to %s", len(png), out)

	if probs := b.problems(); len(probs) > 0 {
		t.Errorf("the page had %d problem(s):\n%s", len(probs), strings.Join(probs, "\n"))
	}

	// The recorder itself sees a console error and a failed request, so an
	// empty list above means a clean page, not a deaf listener.
	eval[bool](b, `console.error("recorder check"), fetch("/no-such-page").then(() => true)`)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := strings.Join(b.problems(), "\n")
		if strings.Contains(got, "recorder check") && strings.Contains(got, "HTTP 404") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recorder missed a console error or a 404; it has: %q", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLiveMapTenThousandDrivers feeds 10,000 drivers (synthetic events put
// straight on driver.events and trip.events, which is what the gateway's
// map consumes; 10,000 simulated phones would need more than this 2-core
// machine has beside the browser) and measures, in the page, how fast it
// draws (requestAnimationFrame) and how many bytes the feed brings.
func TestLiveMapTenThousandDrivers(t *testing.T) {
	cfg := sim.DefaultConfig()
	city := demoCity(cfg.Center, cfg.SizeKM)
	addr, brokers := startPlatform(t, city, platform.Gateway)

	const n = 10_000
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	feedDone := make(chan error, 1)
	go func() { feedDone <- feedCity(ctx, brokers, cfg.Center, n) }()
	t.Cleanup(func() {
		stop()
		if err := <-feedDone; err != nil {
			t.Errorf("synthetic feed: %v", err)
		}
	})

	b := newBrowser(t, 1400, 900)
	if _, err := chromedp.Run(b.ctx, chromedp.Navigate("http://"+addr+"/")); err != nil {
		t.Fatalf("open the map: %v", err)
	}
	b.waitFor("10,000 drivers on the map", fmt.Sprintf(`window.hexride && window.hexride.drivers().length === %d`, n), 90*time.Second)
	type figures struct {
		Seconds          float64 `json:"seconds"`
		FPS              float64 `json:"fps"`
		FrameP50Ms       float64 `json:"frameP50Ms"`
		FrameP95Ms       float64 `json:"frameP95Ms"`
		FrameMaxMs       float64 `json:"frameMaxMs"`
		DrawP50Ms        float64 `json:"drawP50Ms"`
		DrawP95Ms        float64 `json:"drawP95Ms"`
		FeedBytesPerSec  float64 `json:"feedBytesPerSec"`
		FeedFramesPerSec float64 `json:"feedFramesPerSec"`
		Snapshots        int     `json:"snapshots"`
		Drivers          int     `json:"drivers"`
	}
	f := eval[figures](b, `window.hexride.measure(10000)`)
	t.Logf("10,000 drivers in headless Chromium over %.1f s: %.1f fps (frame interval p50 %.1f ms, p95 %.1f ms, max %.1f ms; drawing p50 %.1f ms, p95 %.1f ms), %d markers drawn",
		f.Seconds, f.FPS, f.FrameP50Ms, f.FrameP95Ms, f.FrameMaxMs, f.DrawP50Ms, f.DrawP95Ms, f.Drivers)
	t.Logf("feed: %.1f KB/s in %.1f frames/s, %d snapshot(s) after the first", f.FeedBytesPerSec/1024, f.FeedFramesPerSec, f.Snapshots)
	if f.Drivers != n {
		t.Errorf("%d markers drawn, want %d", f.Drivers, n)
	}
	// Bytes are counted, not timed: this one is a budget the test holds.
	if f.FeedBytesPerSec >= 200*1024 {
		t.Errorf("the feed costs %.1f KB/s per viewer, over the 200 KB/s budget", f.FeedBytesPerSec/1024)
	}
	if f.FeedFramesPerSec > 5 {
		t.Errorf("%.1f frames/s reach the viewer, more than the hub's four a second", f.FeedFramesPerSec)
	}
	if probs := b.problems(); len(probs) > 0 {
		t.Errorf("the page had %d problem(s):\n%s", len(probs), strings.Join(probs, "\n"))
	}
}

// feedCity puts n drivers on the street grid around center and keeps them
// moving: every driver pings every 2 s (the simulator's phones ping every 1
// to 4 s), and a tenth of them are on trips in every state.
func feedCity(ctx context.Context, brokers []string, center sim.LatLng, n int) error {
	prod := kafka.NewProducer(brokers, 5*time.Millisecond)
	defer prod.Close()
	r := rand.New(rand.NewPCG(7, 11))
	type car struct{ lat, lng, dlat, dlng float64 }
	cars := make([]car, n)
	var outs []ev.Outgoing
	now := time.Now()
	flush := func() error {
		if len(outs) == 0 {
			return nil
		}
		err := prod.Publish(ctx, outs...)
		outs = outs[:0]
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	add := func(topic, typ, key string, payload any) error {
		e, err := ev.New(typ, key, time.Now(), payload)
		if err != nil {
			return err
		}
		outs = append(outs, ev.Outgoing{Topic: topic, Env: e})
		if len(outs) >= 1000 {
			return flush()
		}
		return nil
	}
	states := []string{ride.StateRequested, ride.StateOffered, ride.StateAccepted, ride.StateArrived, ride.StateInProgress}
	for i := range cars {
		// Along a street of the 200 m grid, at about 10 m/s.
		c := car{lat: center.Lat + (r.Float64()-0.5)*0.09, lng: center.Lng + (r.Float64()-0.5)*0.11}
		step := 20.0 / 111_320
		if r.IntN(2) == 0 {
			c.dlat = step * float64(1-2*r.IntN(2))
		} else {
			c.dlng = step * 1.27 * float64(1-2*r.IntN(2))
		}
		cars[i] = c
		id := fmt.Sprintf("sd-%05d", i)
		if err := add(ev.TopicDriverEvents, ev.TypeDriverAvailability, id, ride.DriverAvailability{DriverID: id, Available: true}); err != nil {
			return err
		}
		if i%10 == 0 {
			st := states[(i/10)%len(states)]
			tr := ride.Trip{TripID: fmt.Sprintf("st-%05d", i), State: st, Version: 3, RiderID: "sr-" + id,
				Pickup: ride.LatLng{Lat: c.lat + 0.004, Lng: c.lng + 0.003}, Dropoff: ride.LatLng{Lat: c.lat - 0.01, Lng: c.lng + 0.012},
				RequestedAt: now, UpdatedAt: now}
			switch st {
			case ride.StateOffered:
				tr.Offer, tr.Offered = &ride.Offer{OfferID: "so-" + id, DriverID: id}, []string{id}
			case ride.StateRequested:
			default:
				tr.DriverID, tr.Offered = id, []string{id}
			}
			if err := add(ev.TopicTripEvents, ev.TypeTripUpdated, tr.TripID, ride.TripUpdated{Trip: tr, Cause: "synthetic"}); err != nil {
				return err
			}
		}
	}
	// A quarter of the drivers each half second: every driver every 2 s.
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for round := 0; ; round++ {
		for i := round % 4; i < n; i += 4 {
			c := &cars[i]
			c.lat += c.dlat
			c.lng += c.dlng
			if c.lat < center.Lat-0.045 || c.lat > center.Lat+0.045 {
				c.dlat = -c.dlat
			}
			if c.lng < center.Lng-0.055 || c.lng > center.Lng+0.055 {
				c.dlng = -c.dlng
			}
			id := fmt.Sprintf("sd-%05d", i)
			if err := add(ev.TopicDriverEvents, ev.TypeDriverLocation, id, ride.DriverLocation{DriverID: id, Lat: c.lat, Lng: c.lng}); err != nil {
				return err
			}
		}
		if err := flush(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
