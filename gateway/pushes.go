package gateway

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pushes numbers each user's pushes and keeps the recent ones in Redis so a
// phone that reconnects with ?after_seq=N gets exactly what it missed.
type Pushes struct {
	rdb redis.UniversalClient
	// Keep is how many pushes per user are retained (at least 256 by
	// contract; 1024 covers ten minutes of 1 Hz driver.location pushes).
	Keep int
}

// Retention of a user's pushes after their last one, and of the counter.
const (
	retainFor  = 3600      // seconds
	counterFor = 7 * 86400 // seconds
	seenFor    = 86400     // seconds a push id is remembered
)

func seqKey(user string) string  { return "push-seq:" + user }
func listKey(user string) string { return "push-log:" + user }
func seenKey(id string) string   { return "push-seen:" + id }

// presenceKey is the set of gateway replicas holding a socket of the user.
func presenceKey(user string) string { return "presence:" + user }

// numberScript gives a push the user's next seq, once per push id, and keeps
// it. It returns {1, seq, message, replicas...} for a new push, naming the
// gateway replicas that hold a socket of the user, and {0, seq} for one
// already numbered (a redelivery: it was delivered or is in the log).
// KEYS: seen, seq, log, presence. ARGV: message without seq (a JSON object),
// keep, retain seconds, counter seconds, seen seconds.
var numberScript = redis.NewScript(`
local seen = redis.call('GET', KEYS[1])
if seen then return {0, tonumber(seen)} end
local seq = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
local msg = '{"seq":' .. seq .. ',' .. string.sub(ARGV[1], 2)
redis.call('ZADD', KEYS[3], seq, msg)
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[2]) + 1))
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3]))
redis.call('SET', KEYS[1], seq, 'EX', tonumber(ARGV[5]))
local out = {1, seq, msg}
for _, r in ipairs(redis.call('SMEMBERS', KEYS[4])) do table.insert(out, r) end
return out
`)

// Numbered is a push with its seq.
type Numbered struct {
	Seq int64
	Msg []byte
	// Fresh is false if this push id was numbered before.
	Fresh bool
	// Replicas hold a socket of the user (only for fresh pushes).
	Replicas []string
}

// Number assigns the next seq to a push identified by id and stores it.
func (p *Pushes) Number(ctx context.Context, id, user string, msg []byte) (Numbered, error) {
	ns, err := p.NumberAll(ctx, []ToNumber{{ID: id, User: user, Msg: msg}})
	if err != nil {
		return Numbered{}, err
	}
	return ns[0], nil
}

func checkPushMessage(id string, msg []byte) error {
	if len(msg) < 2 || msg[0] != '{' || msg[1] == '}' {
		return fmt.Errorf("push %s: message must be a non-empty JSON object", id)
	}
	return nil
}

// ToNumber is one push for NumberAll.
type ToNumber struct {
	ID, User string
	Msg      []byte
	// Timing is carried to the socket write, where it is measured.
	Timing Timing
}

// Timing is when a push's event happened and, for an offer, when its ride
// was requested: the socket writer observes push latency and request→offer
// from them.
type Timing struct {
	At, RequestedAt time.Time
}

// NumberAll is Number for many pushes in one round trip (a pipeline), in
// order: two pushes to one user get consecutive seqs in the order given.
func (p *Pushes) NumberAll(ctx context.Context, ps []ToNumber) ([]Numbered, error) {
	for _, t := range ps {
		if err := checkPushMessage(t.ID, t.Msg); err != nil {
			return nil, err
		}
	}
	run := func(eval func(redis.Pipeliner, []string, ...any) *redis.Cmd) ([]*redis.Cmd, error) {
		cmds := make([]*redis.Cmd, len(ps))
		_, err := p.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for i, t := range ps {
				cmds[i] = eval(pipe, []string{seenKey(t.ID), seqKey(t.User), listKey(t.User), presenceKey(t.User)},
					t.Msg, p.keep(), retainFor, counterFor, seenFor)
			}
			return nil
		})
		return cmds, err
	}
	cmds, err := run(func(pipe redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
		return numberScript.EvalSha(ctx, pipe, keys, args...)
	})
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The script is not cached yet (a new or restarted Redis): none
		// of the calls ran, so sending the script itself is safe.
		cmds, err = run(func(pipe redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
			return numberScript.Eval(ctx, pipe, keys, args...)
		})
	}
	if err != nil {
		return nil, fmt.Errorf("number %d pushes: %w", len(ps), err)
	}
	out := make([]Numbered, len(ps))
	for i, c := range cmds {
		res, err := c.Slice()
		if err != nil {
			return nil, fmt.Errorf("number push %s for %s: %w", ps[i].ID, ps[i].User, err)
		}
		out[i] = numbered(res)
	}
	return out, nil
}

// numbered reads numberScript's answer.
func numbered(res []any) Numbered {
	n := Numbered{}
	n.Seq, _ = res[1].(int64)
	if res[0].(int64) == 0 {
		return n
	}
	s, _ := res[2].(string)
	n.Msg, n.Fresh = []byte(s), true
	for _, r := range res[3:] {
		if r, ok := r.(string); ok {
			n.Replicas = append(n.Replicas, r)
		}
	}
	return n
}

// Current returns the user's latest seq (0 if none).
func (p *Pushes) Current(ctx context.Context, user string) (int64, error) {
	n, err := p.rdb.Get(ctx, seqKey(user)).Int64()
	if err != nil && err != redis.Nil {
		return 0, fmt.Errorf("read seq of %s: %w", user, err)
	}
	return n, nil
}

func (p *Pushes) keep() int {
	if p.Keep < 256 {
		return 1024
	}
	return p.Keep
}

// Retained is one stored push.
type Retained struct {
	Seq int64
	Msg []byte
}

// Since returns the user's pushes with seq > after, or gap=true if some of
// them are no longer retained (or after is ahead of anything sent).
func (p *Pushes) Since(ctx context.Context, user string, after int64) (msgs []Retained, gap bool, err error) {
	var cur *redis.StringCmd
	var rng *redis.ZSliceCmd
	_, err = p.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		cur = pipe.Get(ctx, seqKey(user))
		rng = pipe.ZRangeByScoreWithScores(ctx, listKey(user), &redis.ZRangeBy{Min: "(" + strconv.FormatInt(after, 10), Max: "+inf"})
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, false, fmt.Errorf("read pushes of %s after %d: %w", user, after, err)
	}
	current, _ := strconv.ParseInt(cur.Val(), 10, 64)
	if after > current {
		return nil, true, nil
	}
	if after == current {
		return nil, false, nil
	}
	zs := rng.Val()
	if len(zs) == 0 || int64(zs[0].Score) != after+1 {
		return nil, true, nil
	}
	out := make([]Retained, len(zs))
	for i, z := range zs {
		s, _ := z.Member.(string)
		out[i] = Retained{Seq: int64(z.Score), Msg: []byte(s)}
	}
	return out, false, nil
}
