package sim

import (
	"slices"
	"sync"
	"time"

	"github.com/hexride/hexride/protocol"
)

// RequestRecord is what one rider saw of its request (Config.Record): a
// checker holds it against the event log and the store, so it says only
// what the phone knows.
type RequestRecord struct {
	Rider string `json:"rider"`
	// TripID is set once the rider learnt its trip (the ack, or a push);
	// empty means the platform never told this phone it took the request.
	TripID string `json:"trip_id,omitempty"`
	// Acked is whether the ride.request itself got an ack.
	Acked bool `json:"acked"`
	// Error is the code of the error that ended the request unanswered
	// (after the phone's retries), if any.
	Error     string    `json:"error,omitempty"`
	SentAt    time.Time `json:"sent_at"`
	AckedAt   time.Time `json:"acked_at,omitzero"`
	OfferedAt time.Time `json:"offered_at,omitzero"`
	MatchedAt time.Time `json:"matched_at,omitzero"`
	// FinalState is the last trip state the rider saw ("" if none).
	FinalState string `json:"final_state,omitempty"`
	// Outcome is how the phone's part ended: ended (a terminal state
	// seen), ended_unseen (resync without a trip), failed (an error
	// answer), unanswered (no answer before the run stopped or the phone
	// gave up), unfinished (a trip still active when the run stopped).
	Outcome string `json:"outcome"`
}

// PushRecord is one trip push (or the trip in a resync) as a phone got it,
// after the phone dropped replays of seqs it had already seen.
type PushRecord struct {
	User    string    `json:"user"`
	Seq     int64     `json:"seq"`
	TripID  string    `json:"trip_id"`
	State   string    `json:"state"`
	Version int64     `json:"version"`
	At      time.Time `json:"at"`
	// UpdatedAt is when the transition it tells of was applied (its
	// updated_at), so At minus UpdatedAt is the push's latency.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Resync marks the trip carried by a resync push, which repeats what
	// the phone may already have seen.
	Resync bool `json:"resync,omitempty"`
}

// recordLog holds the records of a run with Config.Record.
type recordLog struct {
	mu       sync.Mutex
	requests []RequestRecord
	pushes   []PushRecord
}

func (m *metrics) recordPush(cfg Config, user string, seq int64, t *protocol.TripMessage, resync bool, now time.Time) {
	if !cfg.Record {
		return
	}
	m.log.mu.Lock()
	updated, _ := parseTime(t.UpdatedAt)
	m.log.pushes = append(m.log.pushes, PushRecord{User: user, Seq: seq, TripID: t.TripID, State: t.State,
		Version: t.Version, At: now, UpdatedAt: updated, Resync: resync})
	m.log.mu.Unlock()
}

func (m *metrics) recordRequest(rec RequestRecord) {
	m.log.mu.Lock()
	m.log.requests = append(m.log.requests, rec)
	m.log.mu.Unlock()
}

func (m *metrics) records() ([]RequestRecord, []PushRecord) {
	m.log.mu.Lock()
	defer m.log.mu.Unlock()
	return slices.Clone(m.log.requests), slices.Clone(m.log.pushes)
}
