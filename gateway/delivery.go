package gateway

// The delivery path of a push, in the order a push takes it: the router
// hands user.pushes to HandlePushes, which numbers them per user in Redis
// (pushes.go) and routes each to the sessions of its user, on this replica
// (hub.deliver → session.push, session.go) or another (forward, over the
// replica's Redis channel, received by RunPushes). RunPushes also runs the
// healer (heal.go), which fills what a session missed.

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/protocol"
)

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
				s.hub.deliver(f.User, f.Seq, f.Msg, f.timing())
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
	// At and RequestedAt are the push's Timing, in Unix microseconds.
	At          int64 `json:"a,omitempty"`
	RequestedAt int64 `json:"r,omitempty"`
}

// timing is f's Timing.
func (f forwarded) timing() Timing {
	var tm Timing
	if f.At != 0 {
		tm.At = time.UnixMicro(f.At)
	}
	if f.RequestedAt != 0 {
		tm.RequestedAt = time.UnixMicro(f.RequestedAt)
	}
	return tm
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
		tm := Timing{At: e.OccurredAt}
		if p.RequestedAt != "" {
			tm.RequestedAt, _ = time.Parse(protocol.TimeFormat, p.RequestedAt) // a bad one is not measured
		}
		ps[i] = ToNumber{ID: e.ID, User: p.Key(), Msg: p.Message, Timing: tm}
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
			s.route(ctx, ps[i].User, n, ps[i].Timing)
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
func (s *Server) route(ctx context.Context, user string, n Numbered, tm Timing) {
	for _, r := range n.Replicas {
		if r == s.replica {
			s.hub.deliver(user, n.Seq, n.Msg, tm)
			continue
		}
		f := forwarded{User: user, Seq: n.Seq, Msg: n.Msg, At: tm.At.UnixMicro()}
		if !tm.RequestedAt.IsZero() {
			f.RequestedAt = tm.RequestedAt.UnixMicro()
		}
		if err := s.forward(ctx, r, f); err != nil {
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

func (h *hub) deliver(user string, seq int64, msg []byte, tm Timing) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.users[user] {
		s.push(seq, msg, tm)
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
