// Package gateway owns the phones' sockets: it authenticates each WebSocket
// at the handshake, validates and rate-limits every frame, turns each client
// message into an event on Kafka (acknowledging a command only once Kafka has
// it), and delivers pushes, numbered per user and replayable on reconnect.
// It holds no business state of its own: it reads trips only to answer a
// command that cannot succeed with the right error code.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/livemap"
	"github.com/hexride/hexride/ride"
	"github.com/hexride/hexride/supply"
)

// Publisher puts events on the log; it returns once they are durable.
type Publisher interface {
	// Publish returns once the events are durable.
	Publish(ctx context.Context, outs ...ev.Outgoing) error
	// Send queues driver events without waiting for the broker: for a
	// location without an id, which the contract makes fire and forget.
	Send(ctx context.Context, outs ...ev.Outgoing) error
}

// TripReader reads trip state (written by tripstate) to check commands
// against trip.Decide, tripstate's rules.
type TripReader interface {
	Trip(ctx context.Context, id string) (ride.Trip, bool, error)
	CurrentTrip(ctx context.Context, userID, role string) (ride.Trip, bool, error)
	// Ended says which of the trips have ended (or do not exist).
	Ended(ctx context.Context, tripIDs []string) (map[string]bool, error)
}

// Config of the gateway. Zero values take the defaults.
type Config struct {
	// DevAuth enables POST /v1/dev/token, which mints a token for anyone.
	DevAuth bool
	// DevTokenTTL is the lifetime of development tokens (24 h).
	DevTokenTTL time.Duration
	// TokenGrace is how long a socket may outlive its token before it is
	// closed with protocol.CloseTokenExpired (30 s), so a phone reconnecting with a
	// fresh token just in time is not cut off mid-frame.
	TokenGrace time.Duration
	// RatePerSec and Burst bound frames per connection (20/s, burst 40).
	RatePerSec float64
	Burst      int
	// SendQueue is how many pushes may wait for a slow phone before the
	// socket is closed so the phone reconnects and resumes (256).
	SendQueue int
	// Ready reports whether the gateway's dependencies answer, for /readyz.
	Ready func(context.Context) error
	// LiveMap feeds viewer sockets (see viewer.go); nil serves viewers no frames.
	LiveMap *livemap.Hub
	// MaxSpeedKMH is the fastest a driver's locations may imply, measured
	// between arrivals on one socket (DefaultMaxSpeedKMH; see locsanity.go).
	MaxSpeedKMH float64
	// Limits are per user across sockets and replicas, and per IP (see
	// limits.go). The per-socket RatePerSec and Burst stay a first line.
	Limits Limits
}

func (c Config) withDefaults() Config {
	if c.DevTokenTTL <= 0 {
		c.DevTokenTTL = 24 * time.Hour
	}
	if c.TokenGrace <= 0 {
		c.TokenGrace = 30 * time.Second
	}
	if c.RatePerSec <= 0 {
		c.RatePerSec = 20
	}
	if c.Burst <= 0 {
		c.Burst = 40
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 256
	}
	if c.MaxSpeedKMH <= 0 {
		c.MaxSpeedKMH = DefaultMaxSpeedKMH
	}
	c.Limits = c.Limits.withDefaults()
	return c
}

// Server is the gateway.
type Server struct {
	cfg    Config
	tokens *Tokens
	pub    Publisher
	trips  TripReader
	rdb    redis.UniversalClient
	pushes *Pushes
	supply supply.Record
	log    *slog.Logger
	hub    *hub
	extra  map[string]http.Handler
	// sessions owns the sockets, which outlive their HTTP handlers.
	sessions *sessions
	// replica names this gateway process in the presence sets and is the
	// Redis channel other replicas forward its users' pushes to.
	replica string
	// ips counts phone sockets per remote IP here; socketSeq numbers this
	// replica's sockets for the users' socket sets.
	ips       ipCount
	socketSeq atomic.Int64
}

var (
	connectionsGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "hexride_gateway_connections", Help: "Open WebSocket connections, by role.",
	}, []string{"role"})
	lateLocations = promauto.NewCounter(prometheus.CounterOpts{
		Name: "hexride_gateway_late_locations_dropped_total", Help: "driver.location pushes dropped because their trip had ended.",
	})
	framesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hexride_gateway_frames_total", Help: "Client frames received, by type (\"invalid\" if undecodable).",
	}, []string{"type"})
	errorsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hexride_gateway_errors_total", Help: "error answers sent, by code.",
	}, []string{"code"})
	pushesTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "hexride_gateway_pushes_delivered_total", Help: "Pushes queued to a connected socket.",
	})
	// latencyBuckets resolve the 20 ms a city's request→offer is held to,
	// and the seconds a fault costs.
	latencyBuckets = []float64{.001, .002, .003, .005, .0075, .01, .015, .02, .03, .05, .075, .1, .2, .5, 1, 2, 5, 10}
	pushLatency    = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "hexride_push_latency_seconds", Buckets: latencyBuckets,
		Help: "From a push's event (its occurred_at) to its write on the phone's socket, for pushes delivered live.",
	})
	requestToOffer = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "hexride_request_to_offer_seconds", Buckets: latencyBuckets,
		Help: "From the ride.request frame's arrival at the gateway to the offer frame's write on the driver's socket.",
	})
)

// observeWrite records how long a push written just now took to get here.
func observeWrite(tm Timing) {
	if tm.At.IsZero() {
		return
	}
	now := time.Now()
	pushLatency.Observe(now.Sub(tm.At).Seconds())
	if !tm.RequestedAt.IsZero() {
		requestToOffer.Observe(now.Sub(tm.RequestedAt).Seconds())
	}
}

// New builds a gateway.
func New(cfg Config, tokens *Tokens, pub Publisher, trips TripReader, rdb redis.UniversalClient, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{cfg: cfg.withDefaults(), tokens: tokens, pub: pub, trips: trips, rdb: rdb,
		pushes: &Pushes{rdb: rdb}, supply: supply.Record{RDB: rdb}, log: log, hub: newHub(), extra: map[string]http.Handler{}, replica: "gw-" + ev.NewID()[:12],
		sessions: newSessions()}
}

// Handle adds a handler (the live map, say) to the gateway's mux.
func (s *Server) Handle(pattern string, h http.Handler) { s.extra[pattern] = h }

// Handler serves the WebSocket endpoint, dev tokens and health. Metrics are
// not the phones' business: the platform serves them on its admin listener.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", s.serveWS)
	if s.cfg.DevAuth {
		mux.HandleFunc("/v1/dev/token", s.devTokenHandler)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := s.cfg.Ready(ctx); err != nil {
				writeJSON(w, http.StatusServiceUnavailable, httpError{"not_ready", err.Error()})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	for p, h := range s.extra {
		mux.Handle(p, h)
	}
	return mux
}

// Close ends every open socket (status 1001, going away: phones resume
// elsewhere with after_seq) and waits for their goroutines, or for ctx.
// Call it after the HTTP server's Shutdown, which leaves upgraded sockets
// alone.
func (s *Server) Close(ctx context.Context) error {
	return s.sessions.close(ctx)
}

// sessions tracks the sockets and their goroutines. A socket lives past the
// handler that upgraded it, so its context derives from this server-lifetime
// one instead of the request's, and Close finds it here.
type sessions struct {
	ctx  context.Context
	stop context.CancelFunc

	mu      sync.Mutex
	closing bool
	// open maps each socket to its TCP connection, which cut closes.
	open map[*websocket.Conn]net.Conn
	wg   sync.WaitGroup
}

func newSessions() *sessions {
	ctx, stop := context.WithCancel(context.Background())
	return &sessions{ctx: ctx, stop: stop, open: map[*websocket.Conn]net.Conn{}}
}

// add counts a socket's goroutine in, before the upgrade; false once closing.
func (g *sessions) add() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.wg.Add(1)
	return true
}

// track registers an upgraded socket until its goroutine calls done.
func (g *sessions) track(c *websocket.Conn, nc net.Conn) func() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open[c] = nc
	if g.closing { // Close ran between add and the upgrade
		go c.Close(websocket.StatusGoingAway, goingAway)
	}
	return func() {
		g.mu.Lock()
		delete(g.open, c)
		g.mu.Unlock()
	}
}

func (g *sessions) done() { g.wg.Done() }

const goingAway = "the gateway is shutting down; reconnect (phones: with after_seq)"

// cut ends every socket at once by closing its TCP connection: reads and
// close handshakes under way fail, and the sockets' goroutines exit.
// (CloseNow would wait for a handshake under way, up to 5 s.)
func (g *sessions) cut() {
	g.stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, nc := range g.open {
		nc.Close()
	}
}

// closeGrace is how long close lets phones answer the close frame before it
// cuts their connections: a phone that is itself shutting down never will.
const closeGrace = time.Second

// close sends every socket a close frame (1001) and waits for their
// goroutines; after closeGrace (or when ctx ends) it cuts what is left, and
// it gives up only when ctx ends.
func (g *sessions) close(ctx context.Context) error {
	g.mu.Lock()
	g.closing = true
	for c := range g.open {
		go c.Close(websocket.StatusGoingAway, goingAway)
	}
	g.mu.Unlock()
	defer g.stop()
	finished := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(finished)
	}()
	grace := time.NewTimer(closeGrace)
	defer grace.Stop()
	select {
	case <-finished:
		return nil
	case <-grace.C:
		g.cut()
	case <-ctx.Done():
		g.cut()
	}
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close sockets: %w", ctx.Err())
	}
}
