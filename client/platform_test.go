package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hexride/hexride/client"
	"github.com/hexride/hexride/internal/devbroker"
	"github.com/hexride/hexride/internal/platform"
	"github.com/hexride/hexride/internal/platformtest"
	"github.com/hexride/hexride/internal/redistest"
	"github.com/hexride/hexride/protocol"
)

// testPlatform is a whole platform in this process: every service, on an
// embedded broker over TCP and a real redis-server (as internal/platform's
// own tests start it).
type testPlatform struct {
	t   *testing.T
	run *platform.Running
}

func startPlatform(t *testing.T) *testPlatform {
	t.Helper()
	broker, err := devbroker.StartLocal(0, 4, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	rs := redistest.Start(t)
	cfg := platform.Config{Addr: "127.0.0.1:0", KafkaPartitions: 4, OfferTimeout: 10 * time.Second,
		SearchDeadline: 60 * time.Second, StaleAfter: 15 * time.Second, MaxPickupM: 5000, DevAuth: true,
		LogLevel: "warn", DispatchPolicy: "greedy", BatchWindow: 2 * time.Second,
		KafkaBrokers: strings.Join(broker.Addrs(), ","), RedisAddr: rs.Addr}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	run := platformtest.Start(t, func(ctx context.Context, onReady func(*platform.Running)) error {
		return platform.Run(ctx, cfg, log, platform.Options{OnReady: onReady})
	})
	return &testPlatform{t: t, run: run}
}

func (p *testPlatform) url() string { return "ws://" + p.run.Addr + "/v1/ws" }

func (p *testPlatform) token(role, sub string) string {
	tok, err := p.run.Tokens.Mint(sub, role, time.Hour)
	if err != nil {
		p.t.Fatal(err)
	}
	return tok
}

// phone is a client under test with every push it got, in order.
type phone struct {
	t    *testing.T
	name string
	c    *client.Client

	mu       sync.Mutex
	got      []client.Push
	changed  chan struct{} // closed and replaced on each push
	connects []int64       // the after_seq of each handshake
}

func (p *testPlatform) dial(role, sub string, opts client.Options, ph *phone) *phone {
	p.t.Helper()
	if ph == nil {
		ph = &phone{}
	}
	ph.t, ph.name, ph.changed = p.t, role+":"+sub, make(chan struct{})
	user := opts.OnConnect
	opts.OnConnect = func(n int, after int64) {
		ph.mu.Lock()
		ph.connects = append(ph.connects, after)
		ph.mu.Unlock()
		if user != nil {
			user(n, after)
		}
	}
	opts.MinBackoff = 20 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, p.url(), p.token(role, sub), opts)
	if err != nil {
		p.t.Fatalf("%s: dial: %v", ph.name, err)
	}
	ph.c = c
	p.t.Cleanup(func() { c.Close() })
	go func() {
		for push := range c.Pushes() {
			ph.mu.Lock()
			ph.got = append(ph.got, push)
			close(ph.changed)
			ph.changed = make(chan struct{})
			ph.mu.Unlock()
		}
	}()
	return ph
}

// await returns the first push since index from on that matches, and its
// index.
func (ph *phone) await(what string, from int, match func(client.Push) bool) (client.Push, int) {
	ph.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ph.mu.Lock()
		for i := from; i < len(ph.got); i++ {
			if match(ph.got[i]) {
				p := ph.got[i]
				ph.mu.Unlock()
				return p, i
			}
		}
		from = len(ph.got)
		ch := ph.changed
		ph.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			ph.t.Fatalf("%s: no %s within 20s; got %s", ph.name, what, ph.summary())
		}
	}
}

func (ph *phone) awaitTrip(state string) client.Push {
	ph.t.Helper()
	p, _ := ph.await("trip "+state, 0, func(p client.Push) bool { return p.Trip != nil && p.Trip.State == state })
	return p
}

func (ph *phone) pushes() []client.Push {
	ph.mu.Lock()
	defer ph.mu.Unlock()
	return append([]client.Push(nil), ph.got...)
}

func (ph *phone) summary() string {
	var b strings.Builder
	for _, p := range ph.pushes() {
		b.WriteString(" ")
		b.WriteString(p.Type)
		if p.Trip != nil {
			b.WriteString("/" + p.Trip.State)
		}
		b.WriteString("#")
		b.WriteString(itoa(p.Seq))
	}
	return b.String()
}

// tripStates lists the states of the trip pushes about trip.
func (ph *phone) tripStates(trip string) []string {
	var out []string
	for _, p := range ph.pushes() {
		if p.Trip != nil && p.Trip.TripID == trip {
			out = append(out, p.Trip.State)
		}
	}
	return out
}

// checkSeqs fails unless the pushes' seqs run one by one, none missing and
// none twice (a resync may restart the count).
func (ph *phone) checkSeqs() {
	ph.t.Helper()
	got := ph.pushes()
	for i := 1; i < len(got); i++ {
		if got[i].Type != protocol.PushResync && got[i].Seq != got[i-1].Seq+1 {
			ph.t.Fatalf("%s: push %d has seq %d after %d:%s", ph.name, i, got[i].Seq, got[i-1].Seq, ph.summary())
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// netGate is an HTTPClient whose connections the test can hold back
// (reconnects wait while it is shut) and watch (every connection it made).
type netGate struct {
	mu    sync.Mutex
	open  chan struct{} // closed while connections may be made
	conns []*spyConn
	// onRead, if set, sees every read of every connection; an error cuts
	// the connection there, the bytes unread.
	onRead func(c *spyConn, b []byte) error
}

func newNetGate() *netGate {
	g := &netGate{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *netGate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default:
	}
}

func (g *netGate) reopen() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *netGate) client() *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		g.mu.Lock()
		open := g.open
		g.mu.Unlock()
		select {
		case <-open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		sc := &spyConn{Conn: c, g: g}
		g.mu.Lock()
		g.conns = append(g.conns, sc)
		g.mu.Unlock()
		return sc, nil
	}}}
}

type spyConn struct {
	net.Conn
	g *netGate
}

var errCut = errors.New("cut by the test")

func (c *spyConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.g.onRead != nil {
		if cut := c.g.onRead(c, b[:n]); cut != nil {
			c.Conn.Close()
			return 0, cut
		}
	}
	return n, err
}

var (
	sf      = protocol.LatLng{Lat: 37.7749, Lng: -122.4194}
	pickup  = protocol.LatLng{Lat: 37.7760, Lng: -122.4180}
	dropoff = protocol.LatLng{Lat: 37.7890, Lng: -122.4010}
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}
