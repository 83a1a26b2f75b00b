package gateway

import (
	"context"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/hexride/hexride/protocol"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
)

// Limits that hold for a user across its sockets and across gateway
// replicas (their state is in Redis), and for an IP on one replica. Every
// refusal is counted in hexride_gateway_refusals_total{reason}. See
// docs/architecture.md, "Limits".

// StatusReplaced closes a user's oldest socket when a newer one takes its
// place beyond Limits.MaxSocketsPerUser (on any replica): newest wins.
const StatusReplaced websocket.StatusCode = protocol.CloseReplaced

// replacedReason is StatusReplaced's close reason.
const replacedReason = "replaced by a newer connection"

// Limits configures the limits; zero values take the defaults below, except
// MaxSocketsPerIP, whose zero turns the per-IP limits off.
type Limits struct {
	// MaxSocketsPerUser is how many sockets one user (role and sub) may
	// hold at once across every replica (DefaultMaxSocketsPerUser); a newer
	// socket closes the oldest with StatusReplaced.
	MaxSocketsPerUser int
	// MaxSocketsPerIP is how many phone sockets one remote IP may hold on
	// this replica; the next handshake is refused with HTTP 429. 0 turns
	// this and the per-IP back-off off.
	MaxSocketsPerIP int
	// Per user, across sockets and replicas: location frames, ride.request
	// frames, and every other command. Rates are per second.
	PingRate, CommandRate, RequestRate    float64
	PingBurst, CommandBurst, RequestBurst int
	// BackoffBase is the first back-off after a socket was closed for
	// abuse (1008); each further one within BackoffMemory doubles it, up
	// to BackoffMax. An IP backs off once IPBackoffAfter of its sockets
	// were closed for abuse within BackoffMemory.
	BackoffBase, BackoffMax, BackoffMemory time.Duration
	IPBackoffAfter                         int
}

// Default limits. The per-user budgets are the per-socket limit's (20
// frames a second, bursts of 40), so one phone is never held back by them,
// and a user on many sockets or replicas gets no more than one socket's
// worth; ride.request gets a burst of 20 (a rider's resends and a few
// phones at once) and one every 2 s after that.
const (
	DefaultMaxSocketsPerUser = 5
	DefaultMaxSocketsPerIP   = 200 // the standalone gateway's; 0 (off) in the one-command run
	DefaultPingRate          = 20
	DefaultPingBurst         = 40
	DefaultCommandRate       = 20
	DefaultCommandBurst      = 40
	DefaultRequestRate       = 0.5
	DefaultRequestBurst      = 20
	DefaultBackoffBase       = 5 * time.Second
	DefaultBackoffMax        = 5 * time.Minute
	DefaultBackoffMemory     = time.Hour
	DefaultIPBackoffAfter    = 3
)

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	deff := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxSocketsPerUser, DefaultMaxSocketsPerUser)
	if l.MaxSocketsPerIP < 0 {
		l.MaxSocketsPerIP = 0
	}
	deff(&l.PingRate, DefaultPingRate)
	def(&l.PingBurst, DefaultPingBurst)
	deff(&l.CommandRate, DefaultCommandRate)
	def(&l.CommandBurst, DefaultCommandBurst)
	deff(&l.RequestRate, DefaultRequestRate)
	def(&l.RequestBurst, DefaultRequestBurst)
	defd(&l.BackoffBase, DefaultBackoffBase)
	defd(&l.BackoffMax, DefaultBackoffMax)
	defd(&l.BackoffMemory, DefaultBackoffMemory)
	def(&l.IPBackoffAfter, DefaultIPBackoffAfter)
	return l
}

// Refusal reasons, the label of refusalsTotal.
const (
	refusedReplaced    = "user_sockets"  // an older socket closed for a newer one (4008)
	refusedIPSockets   = "ip_sockets"    // handshake: too many sockets from the IP (429)
	refusedSocketRate  = "socket_rate"   // a frame past the socket's own limit (rate_limited)
	refusedUserPing    = "user_ping"     // a location past the user's budget (rate_limited)
	refusedUserCommand = "user_command"  // a command past the user's budget (rate_limited)
	refusedUserRequest = "user_request"  // a ride.request past the user's budget (rate_limited)
	refusedAbuse       = "abuse_close"   // a socket closed for flooding (1008)
	refusedBackoffUser = "backoff_user"  // handshake: the user is backing off (429)
	refusedBackoffIP   = "backoff_ip"    // handshake: the IP is backing off (429)
	refusedLimitsError = "limits_failed" // a limit could not be read (Redis away): let through
)

var refusalsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "hexride_gateway_refusals_total",
	Help: "Refusals by the gateway's limits, by reason (limits_failed: a limit could not be checked and the frame or socket was let through).",
}, []string{"reason"})

func refused(reason string) { refusalsTotal.WithLabelValues(reason).Inc() }

// pingLease is how many location tokens a socket takes from its user's
// bucket at a time, so a driver pinging every second costs one Redis round
// trip every few pings, not one a ping. A user can overshoot its ping budget
// by at most this much per socket.
const pingLease = 5

// bucketScript is GCRA over a user's bucket: it takes up to ARGV[4] tokens
// and returns {granted, ms until one is free}. KEYS: the bucket (its
// theoretical arrival time, unix ms). ARGV: now (unix ms), interval ms per
// token, burst, wanted.
var bucketScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local T = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then tat = now end
local g = math.floor((now + burst * T - tat) / T)
if g > want then g = want end
if g <= 0 then return {0, tat + T - now - burst * T} end
tat = tat + g * T
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', string.format('%d', tat - now + 1000))
return {g, 0}
`)

// take takes up to want tokens from the user's bucket of a class.
func (s *Server) take(ctx context.Context, class, userKey string, rate float64, burst, want int) (int, error) {
	interval := max(1, int64(math.Round(1000/rate)))
	v, err := bucketScript.Run(ctx, s.rdb, []string{"rl:" + class + ":" + userKey},
		time.Now().UnixMilli(), interval, burst, want).Int64Slice()
	if err != nil {
		return 0, err
	}
	return int(v[0]), nil
}

// spend charges a frame to its user's budget; false if the budget is spent.
// Only the session's reader calls it. A budget that cannot be read (Redis
// away) lets the frame through: the per-socket limit still holds.
func (s *Server) spend(ctx context.Context, sess *session, typ string) bool {
	l := s.cfg.Limits
	class, rate, burst, want, reason := "cmd", l.CommandRate, l.CommandBurst, 1, refusedUserCommand
	switch typ {
	case protocol.MsgLocation:
		if sess.pingTokens > 0 {
			sess.pingTokens--
			return true
		}
		class, rate, burst, want, reason = "ping", l.PingRate, l.PingBurst, min(pingLease, l.PingBurst), refusedUserPing
	case protocol.MsgRideRequest:
		class, rate, burst, reason = "req", l.RequestRate, l.RequestBurst, refusedUserRequest
	}
	g, err := s.take(ctx, class, sess.key, rate, burst, want)
	if err != nil {
		refused(refusedLimitsError)
		s.log.Debug("rate budget", "user", sess.key, "err", err)
		return true
	}
	if g == 0 {
		refused(reason)
		return false
	}
	if typ == protocol.MsgLocation {
		sess.pingTokens = g - 1
	}
	return true
}

// socketsKey is a user's sockets on every replica: a sorted set of socket
// ids ("replica/n") scored by their connect time (unix ms).
func socketsKey(userKey string) string { return "sockets:" + userKey }

// registerScript adds a socket to its user's set, newer than any there, and
// removes and returns the oldest beyond the limit. KEYS: the set. ARGV:
// socket id, now (unix ms), limit, seconds to keep the set.
var registerScript = redis.NewScript(`
local now = tonumber(ARGV[2])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= now then now = tonumber(top[2]) + 1 end
redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if over <= 0 then return {} end
local old = redis.call('ZRANGE', KEYS[1], 0, over - 1)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
return old
`)

// register records a new socket of its user and closes the user's oldest
// sockets beyond the limit, wherever they are: here directly, on another
// replica through its forward channel. A socket whose replica has died
// is simply dropped from the set.
func (s *Server) register(ctx context.Context, sess *session) error {
	keep := int64((s.tokens.rules.MaxTTL + s.cfg.TokenGrace) / time.Second)
	old, err := registerScript.Run(ctx, s.rdb, []string{socketsKey(sess.key)}, sess.id, time.Now().UnixMilli(),
		s.cfg.Limits.MaxSocketsPerUser, keep).StringSlice()
	if err != nil {
		return err
	}
	for _, id := range old {
		replica, _, _ := strings.Cut(id, "/")
		if replica == s.replica {
			s.evict(sess.key, id)
			continue
		}
		if err := s.forward(ctx, replica, forwarded{User: sess.key, Evict: id}); err != nil {
			s.log.Warn("forward eviction", "replica", replica, "user", sess.key, "err", err)
		}
	}
	return nil
}

// evict closes a user's socket here, if it is here, with StatusReplaced.
func (s *Server) evict(userKey, id string) {
	for _, sess := range s.hub.sessionsOf(userKey) {
		if sess.id == id {
			refused(refusedReplaced)
			sess.mu.Lock()
			sess.endLocked(StatusReplaced, replacedReason)
			sess.mu.Unlock()
		}
	}
}

// ipCount counts the phone sockets of each remote IP on this replica.
type ipCount struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire counts a socket of ip in, unless it already holds limit.
func (c *ipCount) acquire(ip string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	if c.n[ip] >= limit {
		return false
	}
	c.n[ip]++
	return true
}

func (c *ipCount) release(ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[ip]--; c.n[ip] <= 0 {
		delete(c.n, ip)
	}
}

// remoteIP is the peer's address without its port. hexride does not trust
// X-Forwarded-For: behind a proxy, every phone has the proxy's address, so
// turn the per-IP limits off there (or let the proxy enforce them).
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func backoffUserKey(userKey string) string { return "backoff:user:" + userKey }
func backoffIPKey(ip string) string        { return "backoff:ip:" + ip }
func abuseUserKey(userKey string) string   { return "abuse:user:" + userKey }
func abuseIPKey(ip string) string          { return "abuse:ip:" + ip }

// backingOff says how long the user (or, with per-IP limits on, its IP)
// must still wait after being closed for abuse; 0 if not at all. A Redis
// that does not answer lets the handshake through.
func (s *Server) backingOff(ctx context.Context, userKey, ip string) (time.Duration, string) {
	var u, i *redis.DurationCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		u = p.PTTL(ctx, backoffUserKey(userKey))
		if s.cfg.Limits.MaxSocketsPerIP > 0 {
			i = p.PTTL(ctx, backoffIPKey(ip))
		}
		return nil
	})
	if err != nil {
		refused(refusedLimitsError)
		return 0, ""
	}
	if d := u.Val(); d > 0 {
		return d, refusedBackoffUser
	}
	if i != nil && i.Val() > 0 {
		return i.Val(), refusedBackoffIP
	}
	return 0, ""
}

// abuseScript counts an abusive close and, from the threshold on, sets a
// back-off that doubles with each further one. KEYS: the count, the
// back-off. ARGV: base ms, max ms, count memory s, threshold. Returns the
// back-off in ms (0: none yet).
var abuseScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
local k = n - tonumber(ARGV[4])
if k < 0 then return 0 end
local w = tonumber(ARGV[1]) * 2 ^ math.min(k, 30)
if w > tonumber(ARGV[2]) then w = tonumber(ARGV[2]) end
redis.call('SET', KEYS[2], '1', 'PX', string.format('%d', w))
return w
`)

// abused records that a socket of the user, from ip, was closed for abuse:
// its next handshakes are refused for a while.
func (s *Server) abused(userKey, ip string) {
	refused(refusedAbuse)
	l := s.cfg.Limits
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	args := []any{l.BackoffBase.Milliseconds(), l.BackoffMax.Milliseconds(), int64(l.BackoffMemory / time.Second)}
	if err := abuseScript.Run(ctx, s.rdb, []string{abuseUserKey(userKey), backoffUserKey(userKey)}, append(args, 1)...).Err(); err != nil {
		s.log.Warn("record abuse", "user", userKey, "err", err)
	}
	if l.MaxSocketsPerIP > 0 {
		if err := abuseScript.Run(ctx, s.rdb, []string{abuseIPKey(ip), backoffIPKey(ip)}, append(args, l.IPBackoffAfter)...).Err(); err != nil {
			s.log.Warn("record abuse", "ip", ip, "err", err)
		}
	}
}

// tooMany refuses a handshake with 429 and, if known, when to retry.
func tooMany(w http.ResponseWriter, retry time.Duration, msg string) {
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(retry.Seconds())), 10))
	}
	writeJSON(w, http.StatusTooManyRequests, httpError{protocol.CodeRateLimited, msg})
}
