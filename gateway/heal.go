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
// has no later one. So every healEvery the gateway compares each session
// with its user's latest seq (one GET per connected user, pipelined),
// filling what it missed from the push log (or closing it with 1013, so the
// phone resumes, if the log no longer holds it); and when Redis has come
// back (a new run_id, or an error since the last look) it also says again
// where its users are (one SADD each). A driver waiting for the push that
// answers its accept must not wait for long: the fault run once found one
// that gave up after 30 s, when sessions were compared only every 30 s.

// healEvery bounds how late a lost push arrives and how long a socket stays
// undeliverable after Redis comes back.
const healEvery = 2 * time.Second

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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		run, err := s.redisRunID(ctx)
		if err := s.heal(ctx, err != nil || run != lastRun); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("heal delivery", "err", err)
			}
			lastRun = "" // say where the users are again next time
			continue
		}
		lastRun = run
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

// heal fills each session that is behind its user's latest seq and, if
// present, first records this replica again in the presence set of every
// user it holds a socket of.
func (s *Server) heal(ctx context.Context, present bool) error {
	users := s.hub.userList()
	for len(users) > 0 {
		n := min(len(users), healBatch)
		batch := users[:n]
		users = users[n:]
		seqs := make([]*redis.StringCmd, len(batch))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, u := range batch {
				if present {
					p.SAdd(ctx, presenceKey(u), s.replica)
				}
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
		s.enqueueLocked(m.Seq, m.Msg, Timing{})
	}
	healedTotal.WithLabelValues("filled").Inc()
}
