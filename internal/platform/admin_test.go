package platform

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsOnlyOnTheAdminListener: as production runs it, /metrics and
// /debug/pprof/ are answered on the admin address only; the phones' address
// answers 404 for them and keeps the probes.
func TestMetricsOnlyOnTheAdminListener(t *testing.T) {
	for _, svc := range []string{Gateway, Dispatcher} { // the gateway's mux, and the other services'
		t.Run(svc, func(t *testing.T) {
			e := startPlatform(t, func(c *Config) { c.DevAuth, c.JWTSecret, c.AdminAddr = false, "admin-test", "127.0.0.1:0" }, svc)
			if e.run.AdminAddr == "" || e.run.AdminAddr == e.run.Addr {
				t.Fatalf("admin address %q beside %q", e.run.AdminAddr, e.run.Addr)
			}
			for _, c := range []struct {
				addr, path string
				status     int
				body       string
			}{
				{e.run.Addr, "/metrics", 404, ""},
				{e.run.Addr, "/debug/pprof/", 404, ""},
				{e.run.Addr, "/debug/pprof/cmdline", 404, ""},
				{e.run.Addr, "/healthz", 200, ""},
				{e.run.Addr, "/readyz", anyButNotFound, ""}, // a dispatcher is ready once rebuilt
				{e.run.AdminAddr, "/metrics", 200, "go_goroutines"},
				{e.run.AdminAddr, "/debug/pprof/", 200, "goroutine"},
				{e.run.AdminAddr, "/debug/pprof/cmdline", 200, ""},
				{e.run.AdminAddr, "/v1/ws", 404, ""},
			} {
				resp, err := http.Get("http://" + c.addr + c.path)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				where := "public"
				if c.addr == e.run.AdminAddr {
					where = "admin"
				}
				if c.status == anyButNotFound && resp.StatusCode != http.StatusNotFound {
					continue
				}
				if resp.StatusCode != c.status || !strings.Contains(string(b), c.body) {
					t.Errorf("GET %s on the %s address: %d, want %d with %q", c.path, where, resp.StatusCode, c.status, c.body)
				}
			}
		})
	}
}

const anyButNotFound = -1

// TestAdminAddrSettings: the standalone services default to a loopback
// admin port of their own; it may not be the phones' port.
func TestAdminAddrSettings(t *testing.T) {
	cfg := configFrom(t, false, map[string]string{"HEXRIDE_JWT_SECRET": "s", "HEXRIDE_ADDR": "0.0.0.0:8080", "HEXRIDE_ADMIN_ADDR": "127.0.0.1:8080"})
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "HEXRIDE_ADMIN_ADDR") {
		t.Fatalf("admin on the phones' port: %v", err)
	}
	cfg.AdminAddr = "nonsense"
	if err := cfg.Validate(); err == nil {
		t.Fatal("an admin address that is no host:port was accepted")
	}
}

// histogramCount reads a histogram's sample count from this process's
// registry (every platform of a test binary shares it).
func histogramCount(t *testing.T, name string) uint64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// TestRequestToOfferAndPushLatencyAreMeasured: an offer written to a
// driver's socket adds a request→offer sample, and every live push a push
// latency sample, on the server.
func TestRequestToOfferAndPushLatencyAreMeasured(t *testing.T) {
	e := startPlatform(t, nil)
	offers, pushes := histogramCount(t, "hexride_request_to_offer_seconds"), histogramCount(t, "hexride_push_latency_seconds")
	acceptedRide(t, e, e)
	waitFor(t, "request→offer and push latency samples", 5*time.Second, func() bool {
		return histogramCount(t, "hexride_request_to_offer_seconds") > offers &&
			histogramCount(t, "hexride_push_latency_seconds") >= pushes+4 // rider REQUESTED, OFFERED; driver offer, OFFERED
	})
}
