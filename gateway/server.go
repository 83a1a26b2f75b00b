// Package gateway owns the phones' sockets: it authenticates each WebSocket
// at the handshake, validates and rate-limits every frame, turns each client
// message into an event on Kafka (acknowledging a command only once Kafka has
// it), and delivers pushes, numbered per user and replayable on reconnect.
// It holds no business state of its own: it reads trips only to answer a
// command that cannot succeed with the right error code.
package gateway

import (
	"context"
	"encoding/json"
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
	"golang.org/x/sync/errgroup"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/livemap"
	"github.com/hexride/hexride/protocol"
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
)

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

// Group is the consumer group that delivers pushes.
const Group = "gateway"

// RunPushes delivers the pushes other replicas forward to this one, and
// heals sessions that missed some, until ctx ends. user.pushes reaches
// HandlePushes through the router (the routes are in internal/platform).
func (s *Server) RunPushes(ctx context.Context) error {
	sub := s.rdb.Subscribe(ctx, forwardChannel(s.replica))
	defer sub.Close()
	// Wait for the subscription; Redis may be away when the gateway starts.
	// Once subscribed, go-redis subscribes again by itself after a
	// reconnect, and what was forwarded in between is healed (heal.go).
	if err := ev.Retry(ctx, s.log, "subscribe to forwarded pushes", func() error {
		_, err := sub.Receive(ctx)
		return err
	}); err != nil {
		return nil // stopped while starting
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.runHealer(ctx) })
	g.Go(func() error {
		ch := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return nil
			case m, ok := <-ch:
				if !ok {
					return nil
				}
				var f forwarded
				if err := json.Unmarshal([]byte(m.Payload), &f); err != nil {
					s.log.Warn("bad forwarded push", "err", err)
					continue
				}
				if f.Evict != "" {
					s.evict(f.User, f.Evict)
					continue
				}
				s.hub.deliver(f.User, f.Seq, f.Msg)
			}
		}
	})
	return g.Wait()
}

func forwardChannel(replica string) string { return "push-forward:" + replica }

// forwarded is a numbered push on its way to the replica holding the
// socket, or, with Evict, the id of a socket of User that replica must
// close because a newer one took its place (limits.go).
type forwarded struct {
	User  string          `json:"u"`
	Seq   int64           `json:"s,omitempty"`
	Msg   json.RawMessage `json:"m,omitempty"`
	Evict string          `json:"e,omitempty"`
}

// forward publishes f on replica's channel.
func (s *Server) forward(ctx context.Context, replica string, f forwarded) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return s.rdb.Publish(ctx, forwardChannel(replica), b).Err()
}

// HandlePushes numbers a batch of one partition's pushes for their users
// (one Redis round trip for them all, so a burst of driver.location relays
// does not hold up the offer queued behind it), keeps them for resume, and
// hands each to every gateway replica holding a socket of its user: itself
// directly, others over their Redis channel. A push numbered before (a
// redelivery) is not delivered again: it was either delivered or is waiting
// in the log for the phone's resume. Forwarding is best effort (Redis
// pub/sub is at most once); a session that sees a seq gap fills it from the
// log. It decides no events.
func (s *Server) HandlePushes(ctx context.Context, es []ev.Envelope) ([]ev.Outgoing, error) {
	return nil, s.handlePushes(ctx, es)
}

func (s *Server) handlePushes(ctx context.Context, es []ev.Envelope) error {
	ps := make([]ToNumber, len(es))
	for i, e := range es {
		if e.Type != ev.TypePush {
			return ev.Permanent(fmt.Errorf("unknown push event type %q", e.Type))
		}
		var p protocol.Push
		if err := e.DecodePayload(&p); err != nil {
			return err
		}
		if p.UserID == "" {
			return ev.Permanent(fmt.Errorf("push %s has no user_id", e.ID))
		}
		if err := checkPushMessage(e.ID, p.Message); err != nil {
			return ev.Permanent(err)
		}
		// Numbered, kept and delivered under the user key: a driver
		// whose sub is a rider's id never shares the rider's stream.
		ps[i] = ToNumber{ID: e.ID, User: p.Key(), Msg: p.Message}
	}
	ps, err := s.dropLateLocations(ctx, ps)
	if err != nil {
		return err
	}
	ns, err := s.pushes.NumberAll(ctx, ps)
	if err != nil {
		return err
	}
	for i, n := range ns {
		if n.Fresh {
			s.route(ctx, ps[i].User, n)
		}
	}
	return nil
}

// dropLateLocations removes driver.location pushes about trips that have
// ended: the contract sends them only while the trip is under way, but
// tripstate relays pings apart from the transitions, so a relay can reach
// the log just behind the trip's last push. A user's pushes share one
// partition and are handled in order, and tripstate stores a trip's end
// before it pushes it, so checking here, just before numbering, lets no
// late relay through.
func (s *Server) dropLateLocations(ctx context.Context, ps []ToNumber) ([]ToNumber, error) {
	tripOf := make([]string, len(ps))
	var ids []string
	seen := map[string]bool{}
	for i, t := range ps {
		var m struct {
			Type   string `json:"type"`
			TripID string `json:"trip_id"`
		}
		if json.Unmarshal(t.Msg, &m) != nil || m.Type != protocol.PushDriverLocation {
			continue
		}
		tripOf[i] = m.TripID
		if !seen[m.TripID] {
			seen[m.TripID] = true
			ids = append(ids, m.TripID)
		}
	}
	if len(ids) == 0 {
		return ps, nil
	}
	ended, err := s.trips.Ended(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("check trips of driver.location pushes: %w", err)
	}
	kept := ps[:0:0]
	for i, t := range ps {
		if tripOf[i] != "" && ended[tripOf[i]] {
			lateLocations.Inc()
			continue
		}
		kept = append(kept, t)
	}
	return kept, nil
}

// route hands a numbered push to every replica holding a socket of user:
// this one directly, others over their Redis channel.
func (s *Server) route(ctx context.Context, user string, n Numbered) {
	for _, r := range n.Replicas {
		if r == s.replica {
			s.hub.deliver(user, n.Seq, n.Msg)
			continue
		}
		if err := s.forward(ctx, r, forwarded{User: user, Seq: n.Seq, Msg: n.Msg}); err != nil {
			s.log.Warn("forward push", "replica", r, "user", user, "err", err)
		}
	}
}

// hub maps user keys (ride.UserKey) to their open sessions on this gateway.
type hub struct {
	mu    sync.RWMutex
	users map[string]map[*session]struct{}
}

func newHub() *hub { return &hub{users: map[string]map[*session]struct{}{}} }

// add registers a session; first is true for the user's first session here.
func (h *hub) add(s *session) (first bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.users[s.key]
	if m == nil {
		m = map[*session]struct{}{}
		h.users[s.key] = m
	}
	m[s] = struct{}{}
	return len(m) == 1
}

// remove drops a session; last is true if the user has no session left here.
func (h *hub) remove(s *session) (last bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.users[s.key]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(h.users, s.user)
			return true
		}
	}
	return false
}

func (h *hub) deliver(user string, seq int64, msg []byte) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.users[user] {
		s.push(seq, msg)
	}
}

// userList returns the users holding a socket here.
func (h *hub) userList() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]string, 0, len(h.users))
	for u := range h.users {
		out = append(out, u)
	}
	return out
}

// sessionsOf returns a user's sessions here.
func (h *hub) sessionsOf(user string) []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*session, 0, len(h.users[user]))
	for s := range h.users[user] {
		out = append(out, s)
	}
	return out
}
