package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// session is one open socket. An idle session costs one goroutine, its
// reader: the HTTP handler returns once the socket is set up (so net/http's
// per-request state and the handler's stack are freed), and a writer
// goroutine exists only while frames are waiting to be written. Measured
// figures are in docs/loadtest.md.
type session struct {
	// user and role are the token's sub and role; key is the user they make
	// together (ride.UserKey), which pushes, presence and command memory
	// are kept under.
	user, role, key string
	// id names the socket in its user's socket set ("replica/n"); ip is
	// the peer's address, counted per IP (limits.go).
	id, ip string
	conn   *websocket.Conn
	// ctx is the server's lifetime, shared by every session: a context of
	// its own would cost each socket about a kilobyte, so a single session
	// ends by closing its conn, which ends its Read.
	ctx context.Context
	// limit is how many frames may wait for a slow phone (Config.SendQueue).
	limit int

	mu sync.Mutex
	// queue holds frames not yet written; writing says a writer goroutine
	// is draining it. Both are nil and false on an idle socket.
	queue   []queued
	writing bool
	// While resuming, live pushes wait in pending so the replay and the live
	// stream join with no gap and no duplicate.
	resuming bool
	pending  []Retained
	lastSeq  int64
	closed   bool
	// fill reads retained pushes after a seq, to heal a gap in live delivery.
	fill func(after int64) ([]Retained, bool, error)

	// fix is the driver's last accepted location on this socket; only the
	// reader touches it (checkLocation).
	fix lastFix
	// pingTokens are location tokens leased from the user's budget and not
	// yet spent; only the reader touches them (spend).
	pingTokens int
}

// push queues a numbered push; a phone too slow to take its queue is
// disconnected (it resumes from its last seq), never waited for.
func (s *session) push(seq int64, msg []byte, tm Timing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resuming {
		s.pending = append(s.pending, Retained{Seq: seq, Msg: msg})
		return
	}
	s.sendLocked(seq, msg, tm)
}

// queued is a frame waiting for the writer, with the timing of the push it
// carries (zero for answers and for pushes read back from the log).
type queued struct {
	b  []byte
	tm Timing
}

func (s *session) sendLocked(seq int64, msg []byte, tm Timing) {
	if s.closed || seq <= s.lastSeq {
		return
	}
	if seq > s.lastSeq+1 && s.fill != nil {
		// A push went astray (a forward lost, or one numbered while this
		// socket was registering): send what is missing from the log first.
		missing, gap, err := s.fill(s.lastSeq)
		if err != nil || gap {
			s.endLocked(websocket.StatusTryAgainLater, "missed pushes; resume with after_seq")
			return
		}
		for _, m := range missing {
			if m.Seq < seq {
				s.enqueueLocked(m.Seq, m.Msg, Timing{})
			}
		}
	}
	s.enqueueLocked(seq, msg, tm)
}

func (s *session) enqueueLocked(seq int64, msg []byte, tm Timing) {
	if s.closed || seq <= s.lastSeq {
		return
	}
	if s.queueLocked(queued{b: msg, tm: tm}) {
		s.lastSeq = seq
		pushesTotal.Inc()
	}
}

// queueLocked hands a frame to the writer, starting one if none runs. A
// phone that lets more than limit frames pile up is disconnected (it
// resumes from its last seq), never waited for.
func (s *session) queueLocked(q queued) bool {
	if s.closed {
		return false
	}
	if len(s.queue) >= s.limit {
		s.endLocked(websocket.StatusTryAgainLater, "too slow; resume with after_seq")
		return false
	}
	s.queue = append(s.queue, q)
	if !s.writing {
		s.writing = true
		go s.drain()
	}
	return true
}

// endLocked closes the socket with a status the phone can act on. The close
// runs beside the reader (whose Read it ends), not through the context, which
// would cut the connection before the close frame is written.
func (s *session) endLocked(status websocket.StatusCode, reason string) {
	if s.closed {
		return
	}
	s.closed = true
	go s.conn.Close(status, reason)
}

// drain writes queued frames in order and exits when the queue is empty, so
// that a socket with nothing to send holds no writer goroutine.
func (s *session) drain() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 || s.closed {
			s.queue, s.writing = nil, false
			s.mu.Unlock()
			return
		}
		q := s.queue[0]
		s.queue[0] = queued{}
		s.queue = s.queue[1:]
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		err := s.conn.Write(ctx, websocket.MessageText, q.b)
		cancel()
		if err == nil {
			observeWrite(q.tm)
		}
		if err != nil {
			s.mu.Lock()
			s.queue, s.writing, s.closed = nil, false, true
			s.mu.Unlock()
			s.conn.CloseNow() // a phone that cannot take a frame in 10s is gone
			return
		}
	}
}

// answer queues an ack or error; answers are not numbered.
func (s *session) answer(a protocol.Answer) {
	b, err := json.Marshal(a)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queueLocked(queued{b: b})
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	claims, err := s.tokens.Verify(tokenFrom(r))
	if err != nil {
		writeJSON(w, http.StatusUnauthorized, httpError{"unauthorized", err.Error()})
		return
	}
	if claims.Role == protocol.RoleViewer {
		s.serveViewer(w, r, claims) // the live map: see viewer.go
		return
	}
	var afterSeq int64 = -1
	if v := r.URL.Query().Get("after_seq"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, httpError{protocol.CodeBadRequest, "after_seq must be a non-negative integer"})
			return
		}
		afterSeq = n
	}
	key, ip := ride.UserKey(claims.Role, claims.Subject), remoteIP(r)
	// A phone closed for abuse waits before it may come back (limits.go).
	if wait, why := s.backingOff(r.Context(), key, ip); wait > 0 {
		refused(why)
		tooMany(w, wait, "closed for too many messages; wait before reconnecting")
		return
	}
	if limit := s.cfg.Limits.MaxSocketsPerIP; limit > 0 {
		if !s.ips.acquire(ip, limit) {
			refused(refusedIPSockets)
			tooMany(w, 0, "too many connections from this address")
			return
		}
	}
	c, release, ok := s.upgrade(w, r, true)
	if !ok {
		if s.cfg.Limits.MaxSocketsPerIP > 0 {
			s.ips.release(ip)
		}
		return
	}
	if s.cfg.Limits.MaxSocketsPerIP > 0 {
		upgraded := release
		release = func() { s.ips.release(ip); upgraded() }
	}

	ctx := s.sessions.ctx
	sess := &session{user: claims.Subject, role: claims.Role, key: key, ip: ip, conn: c, ctx: ctx,
		id: s.replica + "/" + strconv.FormatInt(s.socketSeq.Add(1), 10), limit: s.cfg.SendQueue, resuming: afterSeq >= 0}
	sess.fill = func(after int64) ([]Retained, bool, error) { return s.pushes.Since(ctx, sess.key, after) }
	if afterSeq < 0 {
		// Live only: start from the current seq, read before registering so
		// a push numbered in between shows as a gap and is filled.
		cur, err := s.pushes.Current(ctx, sess.key)
		if err != nil {
			s.log.Warn("read seq", "user", sess.key, "err", err)
			c.Close(websocket.StatusTryAgainLater, "state store unavailable; retry")
			release()
			return
		}
		sess.lastSeq = cur
	}
	if first := s.hub.add(sess); first {
		if err := s.rdb.SAdd(ctx, presenceKey(sess.key), s.replica).Err(); err != nil {
			// Nobody would route this user's pushes here: the phone tries
			// again (and resumes) rather than wait on a socket that hears
			// nothing.
			s.log.Warn("record presence", "user", sess.key, "err", err)
			s.hub.remove(sess)
			c.Close(websocket.StatusTryAgainLater, "state store unavailable; retry")
			release()
			return
		}
	}
	// Newest wins: beyond the user's socket limit, its oldest sockets are
	// closed, on whichever replica holds them. If Redis fails here, it
	// failed a moment ago for presence too; the limit is enforced again at
	// the user's next connect.
	if err := s.register(ctx, sess); err != nil {
		refused(refusedLimitsError)
		s.log.Warn("register socket", "user", sess.key, "err", err)
	}
	connectionsGauge.WithLabelValues(claims.Role).Inc()
	stopExpiry := closeAtExpiry(claims, s.cfg.TokenGrace, func() {
		sess.mu.Lock()
		defer sess.mu.Unlock()
		sess.endLocked(protocol.CloseTokenExpired, "token expired; reconnect with a fresh token")
	})
	// The socket outlives this handler: returning frees the request's
	// state, and the session's one goroutine reads until the socket ends.
	go func() {
		defer release()
		defer stopExpiry()
		s.runSession(sess, afterSeq)
	}()
}

// upgrade turns the request into a socket the gateway's sessions own
// (small: with phone-sized buffers). release, once the socket is done,
// lets Close stop waiting for it. ok is false if the gateway is shutting
// down or the upgrade failed; the client has its answer then.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, small bool) (c *websocket.Conn, release func(), ok bool) {
	if !s.sessions.add() {
		writeJSON(w, http.StatusServiceUnavailable, httpError{protocol.CodeUnavailable, "the gateway is shutting down; reconnect"})
		return nil, nil, false
	}
	hj := &hijacker{ResponseWriter: w, small: small}
	c, err := websocket.Accept(hj, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		s.sessions.done()
		s.log.Debug("websocket accept", "err", err)
		return nil, nil, false
	}
	c.SetReadLimit(protocol.MaxFrameBytes)
	untrack := s.sessions.track(c, hj.conn)
	return c, func() { untrack(); s.sessions.done() }, true
}

// runSession replays what a resuming phone missed, reads its frames until the
// socket ends, and then unregisters it.
func (s *Server) runSession(sess *session, afterSeq int64) {
	defer connectionsGauge.WithLabelValues(sess.role).Dec()
	defer func() {
		last := s.hub.remove(sess)
		_, err := s.rdb.Pipelined(context.Background(), func(p redis.Pipeliner) error {
			p.ZRem(context.Background(), socketsKey(sess.key), sess.id)
			if last {
				p.SRem(context.Background(), presenceKey(sess.key), s.replica)
			}
			return nil
		})
		if err != nil {
			s.log.Warn("clear presence", "user", sess.key, "err", err)
		}
	}()
	if afterSeq >= 0 {
		if err := s.resume(sess.ctx, sess, afterSeq); err != nil {
			s.log.Warn("resume", "user", sess.key, "err", err)
			sess.conn.Close(websocket.StatusTryAgainLater, "resume failed; retry")
			return
		}
	}
	status, reason := s.readLoop(sess.ctx, sess.conn, sess)
	if status == websocket.StatusPolicyViolation {
		s.abused(sess.key, sess.ip)
	}
	sess.mu.Lock()
	sess.closed = true
	sess.mu.Unlock()
	sess.conn.Close(status, reason)
}

// resume replays what the phone missed after afterSeq, or sends resync with
// its current trip when the gap cannot be filled, then lets live pushes flow.
func (s *Server) resume(ctx context.Context, sess *session, afterSeq int64) error {
	msgs, gap, err := s.pushes.Since(ctx, sess.key, afterSeq)
	if err != nil {
		return err
	}
	if gap {
		rs := protocol.ResyncMessage{Type: protocol.PushResync}
		t, ok, err := s.trips.CurrentTrip(ctx, sess.user, sess.role)
		if err != nil {
			return err
		}
		if ok {
			m := protocol.NewTripMessage(t)
			rs.Trip = &m
		}
		b, err := json.Marshal(rs)
		if err != nil {
			return fmt.Errorf("encode resync: %w", err)
		}
		n, err := s.pushes.Number(ctx, "resync-"+ev.NewID(), sess.key, b)
		if err != nil {
			return err
		}
		msgs = []Retained{{Seq: n.Seq, Msg: n.Msg}}
		// Everything before the resync is superseded by it.
		sess.mu.Lock()
		sess.lastSeq = n.Seq - 1
		sess.mu.Unlock()
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if !gap {
		sess.lastSeq = afterSeq
	}
	for _, m := range msgs {
		sess.enqueueLocked(m.Seq, m.Msg, Timing{})
	}
	for _, m := range sess.pending {
		sess.sendLocked(m.Seq, m.Msg, Timing{})
	}
	sess.pending, sess.resuming = nil, false
	return nil
}
