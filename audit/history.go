package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/events/kafka"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// Kinds of history records.
const (
	KindCommand    = "command"
	KindTransition = "transition"
	KindPush       = "push"
	KindDeadLetter = "dead_letter"
	// KindUndecodable is a record keyed by the trip that is not an event.
	KindUndecodable = "undecodable"
)

// Record is one entry of a trip's history: one event read back from the
// log, with where it was.
type Record struct {
	Kind      string    `json:"kind"`
	Topic     string    `json:"topic"`
	Partition int       `json:"partition"`
	Offset    int64     `json:"offset"`
	At        time.Time `json:"at"`
	Type      string    `json:"type,omitempty"`
	EventID   string    `json:"event_id,omitempty"`
	// By says who sent a command: "rider r-1", "driver d-1", "dispatcher"
	// or "tripstate".
	By string `json:"by,omitempty"`
	// From, State, Version and Cause describe a transition; State and
	// Version also a trip push.
	From    string `json:"from,omitempty"`
	State   string `json:"state,omitempty"`
	Version int64  `json:"version,omitempty"`
	Cause   string `json:"cause,omitempty"`
	// Repeat marks a transition whose version was already seen: an
	// at-least-once redelivery (tripstate re-publishes what it applied
	// when it sees a command again).
	Repeat bool `json:"repeat,omitempty"`
	// To is a push's recipient, and ToRole the role it was for: a user is
	// the pair (ToRole, To).
	To     string `json:"to,omitempty"`
	ToRole string `json:"to_role,omitempty"`
	// Reason is a dead letter's (why it was given up on), or the trip's
	// after a transition (why it was cancelled, why an offer ended).
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`

	users []string // a transition's rider and drivers, as user.pushes keys
}

// String is the record on one line, for a human.
func (r Record) String() string {
	where := fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset)
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-20s ", ev.FormatTime(r.At), where)
	switch r.Kind {
	case KindCommand:
		fmt.Fprintf(&b, "command     %-19s by %s", r.Type, r.By)
	case KindTransition:
		from := r.From
		if from == "" {
			from = "∅"
		}
		fmt.Fprintf(&b, "transition  %s→%s v%d  cause %s", from, r.State, r.Version, r.Cause)
		if r.Repeat {
			b.WriteString("  (again: redelivered)")
		}
	case KindPush:
		fmt.Fprintf(&b, "push        %-19s to %s %s", r.Type, r.ToRole, r.To)
		if r.State != "" {
			fmt.Fprintf(&b, "  %s v%d", r.State, r.Version)
		}
	case KindDeadLetter:
		fmt.Fprintf(&b, "dead letter %-19s", r.Type)
	default:
		fmt.Fprintf(&b, "%-11s", r.Kind)
	}
	if r.Detail != "" {
		b.WriteString("  " + r.Detail)
	}
	if r.Reason != "" {
		b.WriteString("  reason: " + r.Reason)
	}
	if r.EventID != "" {
		b.WriteString("  id " + r.EventID)
	}
	return b.String()
}

// rank orders records of different topics that happened at the same
// instant: a transition carries the time of the command that caused it,
// and its pushes that time too.
var rank = map[string]int{KindCommand: 0, KindUndecodable: 0, KindTransition: 1, KindPush: 2, KindDeadLetter: 3}

// History reads every record about one trip, in log order: its commands
// (trip.commands), its transitions (trip.events), the offer and trip
// pushes about it (user.pushes, on the partitions of its rider and the
// drivers it was offered to) and the dead letters keyed by it
// (dead.letters). Commands, transitions and dead letters are keyed by the
// trip id, so only its partition of each is read.
//
// Each topic's records keep their log order; records of different
// topics are merged by their events' time.
func History(ctx context.Context, brokers []string, tripID string) ([]Record, error) {
	if len(brokers) == 0 {
		return nil, errNoBrokers
	}
	if tripID == "" {
		return nil, fmt.Errorf("history: no trip id")
	}
	readers := map[string]func(kafkago.Message) (Record, bool){
		ev.TopicTripCommands: commandRecord,
		ev.TopicTripEvents:   transitionRecord,
		ev.TopicDeadLetters:  deadLetterRecord,
	}
	streams := make([][]Record, 0, len(readers)+2)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for topic, read := range readers {
		g.Go(func() error {
			recs, err := readKeyed(gctx, brokers, topic, []byte(tripID), func(m kafkago.Message) (Record, bool) {
				if string(m.Key) != tripID {
					return Record{}, false
				}
				return read(m)
			})
			mu.Lock()
			streams = append(streams, recs)
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("history of trip %s: %w", tripID, err)
	}
	var users []string
	for _, s := range streams {
		if len(s) > 0 && s[0].Topic == ev.TopicTripEvents {
			fillFrom(s)
			users = tripUsers(s)
		}
	}
	pushes, err := readPushes(ctx, brokers, tripID, users)
	if err != nil {
		return nil, fmt.Errorf("history of trip %s: %w", tripID, err)
	}
	streams = append(streams, pushes...)
	return merge(streams), nil
}

// readKeyed reads the partition of topic that key maps to and keeps the
// records keep makes of its messages.
func readKeyed(ctx context.Context, brokers []string, topic string, key []byte, keep func(kafkago.Message) (Record, bool)) ([]Record, error) {
	n, err := kafka.Partitions(ctx, brokers, topic)
	if err != nil {
		return nil, err
	}
	spans, err := spansOf(ctx, brokers, topic, []int{kafka.NewPartitioner(n).Of(key)})
	if err != nil {
		return nil, err
	}
	var out []Record
	err = readSpan(ctx, brokers, spans[0], func(m kafkago.Message) error {
		if r, ok := keep(m); ok {
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// at places a record of m in the log.
func at(m kafkago.Message, kind string) Record {
	return Record{Kind: kind, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, At: m.Time.UTC()}
}

// envelopes decodes m's events; a record that does not decode is kept as
// undecodable rather than dropped, since it is part of the trip's record.
func envelopes(m kafkago.Message) ([]ev.Envelope, *Record) {
	decs, err := ev.DecodeRecord(m.Value)
	if err == nil {
		es := make([]ev.Envelope, 0, len(decs))
		for _, d := range decs {
			if d.Err != nil {
				err = d.Err
				break
			}
			es = append(es, d.Envelope)
		}
		if err == nil {
			return es, nil
		}
	}
	r := at(m, KindUndecodable)
	r.Reason = err.Error()
	return nil, &r
}

func commandRecord(m kafkago.Message) (Record, bool) {
	es, bad := envelopes(m)
	if bad != nil {
		return *bad, true
	}
	e := es[0] // trip.commands carries one event to a record
	r := at(m, KindCommand)
	r.At, r.Type, r.EventID = e.OccurredAt, e.Type, e.ID
	var c ride.TripCommand
	if err := e.DecodePayload(&c); err != nil {
		r.Reason = err.Error()
		return r, true
	}
	switch {
	case c.UserID != "":
		r.By = strings.TrimSpace(c.Role + " " + c.UserID)
	case strings.HasPrefix(e.Type, "dispatch."):
		r.By = "dispatcher"
	default:
		r.By = "tripstate"
	}
	switch e.Type {
	case ev.TypeRideRequest:
		if c.Pickup != nil && c.Dropoff != nil {
			r.Detail = fmt.Sprintf("pickup %.5f,%.5f dropoff %.5f,%.5f", c.Pickup.Lat, c.Pickup.Lng, c.Dropoff.Lat, c.Dropoff.Lng)
		}
	case ev.TypeDispatchOffer:
		r.Detail = fmt.Sprintf("offer %s to driver %s, %.0f m away", c.OfferID, c.DriverID, c.PickupDistanceM)
	case ev.TypeOfferAccept, ev.TypeOfferDecline, ev.TypeDispatchExpire:
		r.Detail = "offer " + c.OfferID
	case ev.TypeTripCancel:
		r.Detail = c.Reason
	}
	return r, true
}

func transitionRecord(m kafkago.Message) (Record, bool) {
	es, bad := envelopes(m)
	if bad != nil {
		return *bad, true
	}
	e := es[0]
	r := at(m, KindTransition)
	r.At, r.Type, r.EventID = e.OccurredAt, e.Type, e.ID
	var u ride.TripUpdated
	if err := e.DecodePayload(&u); err != nil {
		r.Reason = err.Error()
		return r, true
	}
	r.State, r.Version, r.Cause, r.Reason = u.Trip.State, u.Trip.Version, u.Cause, u.Trip.Reason
	var d []string
	if u.Trip.DriverID != "" {
		d = append(d, "driver "+u.Trip.DriverID)
	} else if u.Trip.Offer != nil {
		d = append(d, "offered to "+u.Trip.Offer.DriverID)
	}
	if u.Trip.Version == 1 {
		d = append(d, "rider "+u.Trip.RiderID)
	}
	r.Detail = strings.Join(d, ", ")
	// The users whose pushes are about this trip, for readPushes: the
	// user.pushes keys, ride.UserKey(role, id), and the bare ids that
	// records written before pushes were keyed by role carry.
	r.users = []string{ride.UserKey(ride.RoleRider, u.Trip.RiderID), u.Trip.RiderID}
	for _, d := range append(slices.Clone(u.Trip.Offered), u.Trip.DriverID) {
		if d != "" {
			r.users = append(r.users, ride.UserKey(ride.RoleDriver, d), d)
		}
	}
	return r, true
}

func deadLetterRecord(m kafkago.Message) (Record, bool) {
	es, bad := envelopes(m)
	if bad != nil {
		return *bad, true
	}
	e := es[0]
	r := at(m, KindDeadLetter)
	r.At, r.EventID = e.OccurredAt, e.ID
	var dl ev.DeadLetter
	if err := e.DecodePayload(&dl); err != nil {
		r.Reason = err.Error()
		return r, true
	}
	r.Reason = dl.Reason
	r.Detail = fmt.Sprintf("from %s/%d@%d (group %s)", dl.Topic, dl.Partition, dl.Offset, dl.Group)
	if orig, err := ev.Decode([]byte(dl.Value)); err == nil {
		r.Type = orig.Type
		r.Detail += ", event " + orig.ID
	}
	return r, true
}

// fillFrom sets each transition's from-state and marks versions seen
// before as repeats.
func fillFrom(s []Record) {
	var last int64
	state := ""
	for i := range s {
		r := &s[i]
		if r.Kind != KindTransition {
			continue
		}
		if r.Version <= last {
			r.Repeat = true
			continue
		}
		r.From, state, last = state, r.State, r.Version
	}
}

// tripUsers lists the rider and drivers named by a trip's transitions.
func tripUsers(s []Record) []string {
	var users []string
	for _, r := range s {
		for _, u := range r.users {
			if u != "" && !slices.Contains(users, u) {
				users = append(users, u)
			}
		}
	}
	return users
}

// readPushes reads the user.pushes partitions of users and keeps the
// pushes about tripID, one stream per partition. Drivers' location relays
// are left out: one a second for the whole ride, they would drown the
// rest.
func readPushes(ctx context.Context, brokers []string, tripID string, users []string) ([][]Record, error) {
	if len(users) == 0 {
		return nil, nil
	}
	n, err := kafka.Partitions(ctx, brokers, ev.TopicUserPushes)
	if err != nil {
		return nil, err
	}
	part := kafka.NewPartitioner(n)
	var ps []int
	for _, u := range users {
		if p := part.Of([]byte(u)); !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
	}
	spans, err := spansOf(ctx, brokers, ev.TopicUserPushes, ps)
	if err != nil {
		return nil, err
	}
	out := make([][]Record, len(spans))
	g, gctx := errgroup.WithContext(ctx)
	for i, s := range spans {
		g.Go(func() error {
			return readSpan(gctx, brokers, s, func(m kafkago.Message) error {
				if !slices.Contains(users, string(m.Key)) {
					return nil
				}
				if r, ok := pushRecord(m, tripID); ok {
					out[i] = append(out[i], r)
				}
				return nil
			})
		})
	}
	return out, g.Wait()
}

func pushRecord(m kafkago.Message, tripID string) (Record, bool) {
	es, bad := envelopes(m)
	if bad != nil {
		return Record{}, false // another user's business, and not this trip's
	}
	e := es[0]
	var p protocol.Push
	if e.DecodePayload(&p) != nil {
		return Record{}, false
	}
	var msg struct {
		Type    string `json:"type"`
		TripID  string `json:"trip_id"`
		State   string `json:"state"`
		Version int64  `json:"version"`
	}
	if json.Unmarshal(p.Message, &msg) != nil || msg.TripID != tripID || msg.Type == protocol.PushDriverLocation {
		return Record{}, false
	}
	r := at(m, KindPush)
	r.At, r.Type, r.EventID, r.To, r.State, r.Version = e.OccurredAt, msg.Type, e.ID, p.UserID, msg.State, msg.Version
	r.ToRole = protocol.PushRole(p)
	return r, true
}

// merge interleaves streams, each in log order, by time (then kind),
// never reordering a stream.
func merge(streams [][]Record) []Record {
	var out []Record
	for {
		best := -1
		for i, s := range streams {
			if len(s) == 0 {
				continue
			}
			if best < 0 || before(s[0], streams[best][0]) {
				best = i
			}
		}
		if best < 0 {
			return out
		}
		out = append(out, streams[best][0])
		streams[best] = streams[best][1:]
	}
}

func before(a, b Record) bool {
	if !a.At.Equal(b.At) {
		return a.At.Before(b.At)
	}
	if rank[a.Kind] != rank[b.Kind] {
		return rank[a.Kind] < rank[b.Kind]
	}
	if a.Partition != b.Partition { // two users' pushes: any fixed order
		return a.Partition < b.Partition
	}
	return a.Offset < b.Offset
}
