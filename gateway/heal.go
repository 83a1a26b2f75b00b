package gateway

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
)

// Delivery heals itself. A socket is deliverable when this replica's id is
// in its user's presence set and every push numbered for the user reaches
// it. Both can be lost without the session noticing: Redis restarted and
// lost the presence entry (or was away when the socket connected), or a
// forward on Redis pub/sub (at most once) went nowhere. A session only
// notices a lost push when a later one arrives, and the last push of a trip
// has no later one. So the gateway says again where its users are and
// compares each session with its user's latest seq, filling what it missed
// from the push log (or closing it with 1013, so the phone resumes, if the
// log no longer holds it): within healEvery of Redis coming back (a new
// run_id, or an error since the last look), and every fullHealEvery anyway.
// A look costs one INFO; a heal, two commands per connected user.

// healEvery bounds how long a socket stays undeliverable after Redis comes
// back; fullHealEvery how late a push lost some other way arrives.
const (
	healEvery     = 2 * time.Second
	fullHealEvery = 30 * time.Second
)

// healBatch is how many users one pipelined round trip covers.
const healBatch = 500

var healedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "hexride_gateway_healed_total",
	Help: "Sessions whose missed pushes were filled (\"filled\") or that were closed to resume (\"closed\") by the healer.",
}, []string{"how"})

// runHealer heals delivery when Redis may have lost something, until ctx
// ends.
func (s *Server) runHealer(ctx context.Context) error {
	t := time.NewTicker(healEvery)
	defer t.Stop()
	var lastRun string
	lastFull := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		run, err := s.redisRunID(ctx)
		if err == nil && run == lastRun && time.Since(lastFull) < fullHealEvery {
			continue
		}
		if err := s.heal(ctx); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("heal delivery", "err", err)
			}
			lastRun = "" // heal again next time
			continue
		}
		lastRun, lastFull = run, time.Now()
	}
}

// redisRunID names the Redis server's current run: it changes when Redis
// restarts, and with it whatever it did not keep. An error (Redis away, or
// a server that does not say) reads as a change.
func (s *Server) redisRunID(ctx context.Context) (string, error) {
	info, err := s.rdb.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v, nil
		}
	}
	return "", errors.New("redis INFO server has no run_id")
}

// heal re-records this replica in the presence set of every user it holds a
// socket of, and fills each session that is behind its user's latest seq.
func (s *Server) heal(ctx context.Context) error {
	users := s.hub.userList()
	for len(users) > 0 {
		n := min(len(users), healBatch)
		batch := users[:n]
		users = users[n:]
		seqs := make([]*redis.StringCmd, len(batch))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, u := range batch {
				p.SAdd(ctx, presenceKey(u), s.replica)
				seqs[i] = p.Get(ctx, seqKey(u))
			}
			return nil
		})
		if err != nil && err != redis.Nil {
			return err
		}
		for i, u := range batch {
			cur, err := seqs[i].Int64()
			if err != nil {
				continue // no push yet (redis.Nil), or unreadable: next round
			}
			for _, sess := range s.hub.sessionsOf(u) {
				sess.catchUp(cur)
			}
		}
	}
	return nil
}

// catchUp sends what the session missed if it is behind seq cur.
func (s *session) catchUp(cur int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.resuming || s.lastSeq >= cur || s.fill == nil {
		return
	}
	missing, gap, err := s.fill(s.lastSeq)
	switch {
	case err != nil:
		return // Redis again: next round
	case gap:
		healedTotal.WithLabelValues("closed").Inc()
		s.endLocked(websocket.StatusTryAgainLater, "missed pushes; resume with after_seq")
		return
	}
	for _, m := range missing {
		s.enqueueLocked(m.Seq, m.Msg)
	}
	healedTotal.WithLabelValues("filled").Inc()
}
