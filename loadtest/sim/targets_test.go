package sim_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/hexride/hexride/loadtest/sim"
)

// tcpProxy forwards a loopback port to target until closed, and then cuts
// every connection it carried: a gateway replica that dies.
type tcpProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestTargetsMovePhonesAndRecord runs phones over two targets, one of which
// dies mid-run: its phones move to the other and resume, none is lost, and
// the request log has one record per request sent, with what each rider
// saw.
func TestTargetsMovePhonesAndRecord(t *testing.T) {
	base := startPlatform(t)
	u, _ := url.Parse(base)
	proxy := startProxy(t, u.Host)

	cfg := sim.DefaultConfig()
	cfg.Targets = []string{base, "http://" + proxy.ln.Addr().String()}
	cfg.Record = true
	cfg.GiveUpAfter = 20
	cfg.Drivers = 20
	cfg.RequestsPerSec = 3
	cfg.Duration = 6 * time.Second
	cfg.RampUp = time.Second
	cfg.Drain = 30 * time.Second
	cfg.Seed = 3
	cfg.CancelProb = 0
	cfg.ThinkMin, cfg.ThinkMax = 100*time.Millisecond, 500*time.Millisecond
	cfg.PingMin, cfg.PingMax = 500*time.Millisecond, time.Second
	cfg.SizeKM = 2
	cfg.Speedup = 60
	time.AfterFunc(3*time.Second, proxy.close)

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	rep, err := sim.Run(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Drivers.Online != int64(cfg.Drivers) || rep.Connections.Lost != 0 {
		t.Errorf("%d of %d drivers online, %d phones lost", rep.Drivers.Online, cfg.Drivers, rep.Connections.Lost)
	}
	if rep.Connections.Reconnects == 0 {
		t.Error("no phone reconnected after its target died")
	}
	if int64(len(rep.RequestLog)) != rep.Requests.Sent {
		t.Errorf("%d request records for %d requests sent", len(rep.RequestLog), rep.Requests.Sent)
	}
	for _, r := range rep.RequestLog {
		if r.TripID != "" && r.Outcome == "ended" && !r.Acked {
			t.Logf("request of %s learnt its trip from a push, not the ack", r.Rider)
		}
		if r.Outcome == "ended" && r.FinalState == "" {
			t.Errorf("record %+v ended without a state", r)
		}
	}
	if len(rep.PushLog) == 0 {
		t.Error("no trip push recorded")
	}
}
