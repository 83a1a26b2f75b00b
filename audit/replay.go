package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	kafkago "github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/events/kafka"
	"github.com/hexride/hexride/ride"
	"github.com/hexride/hexride/trip"
)

// ReplayConfig says where to read the log, which store to compare with and
// which empty store to rebuild into.
type ReplayConfig struct {
	Brokers []string
	// Live is the store tripstate writes.
	Live redis.UniversalClient
	// Into must be empty: replay refuses to write over anything.
	Into redis.UniversalClient
}

// Report is what a replay found.
type Report struct {
	// Records is how many trip.events records were read, Partitions from
	// how many partitions.
	Records    int `json:"records"`
	Partitions int `json:"partitions"`
	// Redelivered counts records that repeat a version already read with
	// the same event id and byte-identical payload: at-least-once
	// redelivery, which tripstate does on purpose when it sees a command
	// again. They are skipped and are not a problem.
	Redelivered int `json:"redelivered"`
	// Trips is how many trips were rebuilt; Equal of them match the live
	// store.
	Trips int `json:"trips"`
	Equal int `json:"equal"`
	// Differing lists the trips stored differently.
	Differing []Difference `json:"differing"`
	// MissingLive lists trips the log has and the live store does not
	// (a finished trip expires from it after 7 days); MissingReplay trips
	// the live store has and the log does not (the log's retention, or a
	// write that bypassed tripstate).
	MissingLive   []string `json:"missing_live"`
	MissingReplay []string `json:"missing_replay"`
	// Problems are what the log itself gets wrong: a version skipped, a
	// version repeated with other content, a transition the state machine
	// does not allow, a record that does not decode.
	Problems []Problem `json:"problems"`
	// Elapsed is how long the replay took, in nanoseconds in JSON.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Agree is OK(), for readers of the JSON.
	Agree bool `json:"ok"`
}

// OK reports whether the log and the live store agree on every trip and the
// log has no problem.
func (r *Report) OK() bool {
	return len(r.Differing) == 0 && len(r.MissingLive) == 0 && len(r.MissingReplay) == 0 && len(r.Problems) == 0
}

// Stored is one trip as a store holds it, for the report.
type Stored struct {
	State   string `json:"state"`
	Version int64  `json:"version"`
	// Digest is the sha256, in hex, of the hash's v field and the trip
	// re-encoded from its json field (so field order and spacing do not
	// count, every value does).
	Digest string `json:"digest"`
}

func (s Stored) String() string {
	return fmt.Sprintf("%s v%d sha256:%.12s", s.State, s.Version, s.Digest)
}

// Difference is a trip stored one way live and another way by the replay.
type Difference struct {
	TripID   string `json:"trip_id"`
	Live     Stored `json:"live"`
	Replayed Stored `json:"replayed"`
}

// Problem is something wrong with the log itself.
type Problem struct {
	TripID    string `json:"trip_id"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	Problem   string `json:"problem"`
}

func (p Problem) String() string {
	return fmt.Sprintf("%s (%s/%d@%d): %s", p.TripID, ev.TopicTripEvents, p.Partition, p.Offset, p.Problem)
}

// Replay rebuilds every trip from trip.events into cfg.Into and compares
// the result with cfg.Live, trip by trip.
//
// It folds the recorded transitions: each trip.updated carries the whole
// trip after the transition, so a trip's state is its latest version.
// Along the way it checks what the fold relies on: a trip's versions go
// 1, 2, 3… with neither gap nor conflicting repeat, version 1 is a
// ride.request making it REQUESTED, and every later one is the transition
// that trip.Next (tripstate's own table) gives for its cause. It does not
// re-run the commands: that would need tripstate's decision function and
// clocks, and the transitions already say what was decided.
//
// Replay publishes nothing; it reads each partition to the end it had
// when the replay began. A platform that keeps running meanwhile moves
// the live store ahead of that, which shows as differences: replay a
// quiet platform, or read them as "moved on".
func Replay(ctx context.Context, cfg ReplayConfig) (*Report, error) {
	start := time.Now()
	if len(cfg.Brokers) == 0 {
		return nil, errNoBrokers
	}
	if cfg.Live == nil || cfg.Into == nil {
		return nil, errors.New("replay needs a live store and an empty one to rebuild into")
	}
	n, err := cfg.Into.DBSize(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("check the replay target is empty: %w", err)
	}
	if n > 0 {
		return nil, fmt.Errorf("the replay target holds %d keys: replay writes only into an empty store", n)
	}
	rep, folds, err := readTrips(ctx, cfg.Brokers)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(folds))
	updates := make([]ride.TripUpdated, 0, len(folds))
	for id, f := range folds {
		if f.version > 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		updates = append(updates, folds[id].last)
	}
	if err := trip.NewStore(cfg.Into).Restore(ctx, updates); err != nil {
		return nil, fmt.Errorf("rebuild trips into the replay target: %w", err)
	}
	rep.Trips = len(ids)
	if err := compare(ctx, rep, cfg, ids); err != nil {
		return nil, err
	}
	rep.Elapsed, rep.Agree = time.Since(start), rep.OK()
	return rep, nil
}

// fold is one trip being rebuilt.
type fold struct {
	version int64
	last    ride.TripUpdated
	// seen is a digest of each version's event (id and payload), to tell
	// a redelivery from a conflicting repeat.
	seen map[int64][sha256.Size]byte
}

// readTrips reads every partition of trip.events, at once, and folds each
// trip's transitions.
func readTrips(ctx context.Context, brokers []string) (*Report, map[string]*fold, error) {
	n, err := kafka.Partitions(ctx, brokers, ev.TopicTripEvents)
	if err != nil {
		return nil, nil, err
	}
	spans, err := spansOf(ctx, brokers, ev.TopicTripEvents, allPartitions(n))
	if err != nil {
		return nil, nil, err
	}
	rep := &Report{Partitions: n}
	folds := map[string]*fold{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range spans {
		g.Go(func() error {
			// A trip's events are all on one partition, so each partition
			// folds its own trips and only the merge is shared.
			part := &Report{}
			mine := map[string]*fold{}
			err := readSpan(gctx, brokers, s, func(m kafkago.Message) error {
				part.Records++
				step(part, mine, m)
				return nil
			})
			if err != nil {
				return fmt.Errorf("read %s partition %d: %w", ev.TopicTripEvents, s.partition, err)
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Records += part.Records
			rep.Redelivered += part.Redelivered
			rep.Problems = append(rep.Problems, part.Problems...)
			for id, f := range mine {
				folds[id] = f
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	slices.SortFunc(rep.Problems, func(a, b Problem) int {
		return cmpProblem(a, b)
	})
	return rep, folds, nil
}

func cmpProblem(a, b Problem) int {
	if c := strings.Compare(a.TripID, b.TripID); c != 0 {
		return c
	}
	if a.Partition != b.Partition {
		return a.Partition - b.Partition
	}
	return int(a.Offset - b.Offset)
}

// step folds one trip.events record into its trip.
func step(rep *Report, folds map[string]*fold, m kafkago.Message) {
	problem := func(id, format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{TripID: id, Partition: m.Partition, Offset: m.Offset, Problem: fmt.Sprintf(format, args...)})
	}
	es, bad := envelopes(m)
	if bad != nil {
		problem(string(m.Key), "record does not decode: %s", bad.Reason)
		return
	}
	for _, e := range es {
		var u ride.TripUpdated
		if e.Type != ev.TypeTripUpdated {
			problem(e.Key, "event %s is a %s, not a %s", e.ID, e.Type, ev.TypeTripUpdated)
			continue
		}
		if err := e.DecodePayload(&u); err != nil {
			problem(e.Key, "%v", err)
			continue
		}
		id, t := u.Trip.TripID, u.Trip
		if id == "" || id != e.Key {
			problem(e.Key, "event %s is keyed %q but is about trip %q", e.ID, e.Key, id)
			continue
		}
		f := folds[id]
		if f == nil {
			f = &fold{seen: map[int64][sha256.Size]byte{}}
			folds[id] = f
		}
		sum := sha256.Sum256(append([]byte(e.ID+"\n"), e.Payload...))
		switch {
		case t.Version <= f.version:
			switch prev, ok := f.seen[t.Version]; {
			case ok && prev == sum:
				rep.Redelivered++
			case ok:
				problem(id, "v%d again after v%d, with other content (event %s)", t.Version, f.version, e.ID)
			default:
				problem(id, "v%d after v%d: out of order (event %s)", t.Version, f.version, e.ID)
			}
			continue
		case t.Version != f.version+1:
			// What came between is unknown, so no transition is checked.
			problem(id, "v%d follows v%d: versions missing (expired from the log, or never published)", t.Version, f.version)
		case t.Version == 1:
			if u.Cause != ev.TypeRideRequest || !trip.Created(t.State, t.Reason) {
				problem(id, "v%d: %s by %s, but a trip starts REQUESTED (or CANCELLED %s) by %s", t.Version, t.State, u.Cause,
					trip.ReasonRiderBusy, ev.TypeRideRequest)
			}
		default:
			if next, ok := trip.Next(f.last.Trip.State, u.Cause); !ok || next != t.State {
				problem(id, "v%d: %s→%s by %s is not a transition tripstate makes", t.Version, f.last.Trip.State, t.State, u.Cause)
			}
		}
		f.seen[t.Version] = sum
		f.version, f.last = t.Version, u
	}
}

// compare reads each trip from both stores and sorts it into the report,
// then looks for live trips the log does not have.
func compare(ctx context.Context, rep *Report, cfg ReplayConfig, ids []string) error {
	replayed, err := readStored(ctx, cfg.Into, ids)
	if err != nil {
		return fmt.Errorf("read the replayed trips: %w", err)
	}
	live, err := readStored(ctx, cfg.Live, ids)
	if err != nil {
		return fmt.Errorf("read the live trips: %w", err)
	}
	for _, id := range ids {
		r, l := replayed[id], live[id]
		switch {
		case r == nil:
			return fmt.Errorf("trip %s was rebuilt but cannot be read back from the replay target", id)
		case l == nil:
			rep.MissingLive = append(rep.MissingLive, id)
		case *r == *l:
			rep.Equal++
		default:
			rep.Differing = append(rep.Differing, Difference{TripID: id, Live: *l, Replayed: *r})
		}
	}
	liveIDs, err := scanTrips(ctx, cfg.Live)
	if err != nil {
		return fmt.Errorf("list the live trips: %w", err)
	}
	for _, id := range liveIDs {
		if _, ok := slices.BinarySearch(ids, id); !ok {
			rep.MissingReplay = append(rep.MissingReplay, id)
		}
	}
	slices.Sort(rep.MissingReplay)
	return nil
}

// readStored reads the trips' hashes, a pipeline of a thousand at a time;
// a trip with no hash is absent from the map.
func readStored(ctx context.Context, rdb redis.UniversalClient, ids []string) (map[string]*Stored, error) {
	out := make(map[string]*Stored, len(ids))
	const chunk = 1000
	for i := 0; i < len(ids); i += chunk {
		part := ids[i:min(i+chunk, len(ids))]
		cmds := make([]*redis.SliceCmd, len(part))
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, id := range part {
				cmds[j] = p.HMGet(ctx, trip.TripKey(id), "v", "json")
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read %d trips: %w", len(part), err)
		}
		for j, c := range cmds {
			vals := c.Val()
			raw, ok := vals[1].(string)
			if !ok {
				continue
			}
			v, _ := vals[0].(string)
			out[part[j]] = stored(v, raw)
		}
	}
	return out, nil
}

// stored digests one trip hash. The json is decoded and encoded again
// with the encoding tripstate writes, so that only values count; json
// that does not decode is digested as it is, and differs.
func stored(v, raw string) *Stored {
	var t ride.Trip
	canon := []byte(raw)
	if err := json.Unmarshal(canon, &t); err == nil {
		if b, err := json.Marshal(t); err == nil {
			canon = b
		}
	} else {
		t.State = "UNDECODABLE"
	}
	h := sha256.New()
	_, _ = io.WriteString(h, "v="+v+"\n") // a hash.Hash never fails to write
	_, _ = h.Write(canon)
	return &Stored{State: t.State, Version: t.Version, Digest: hex.EncodeToString(h.Sum(nil))}
}

// scanTrips lists the ids of every trip hash in rdb, on every master of a
// cluster.
func scanTrips(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	prefix := trip.TripKey("")
	var mu sync.Mutex
	var ids []string
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			ids = append(ids, strings.TrimPrefix(it.Val(), prefix))
			mu.Unlock()
		}
		return it.Err()
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, rdb)
	}
	return ids, err
}

// Write prints the report for a human.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "replayed %d trips from %d records of %s (%d partitions; %d redelivered copies skipped) in %s\n",
		r.Trips, r.Records, ev.TopicTripEvents, r.Partitions, r.Redelivered, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "equal:     %d\n", r.Equal)
	fmt.Fprintf(&b, "differing: %d\n", len(r.Differing))
	for _, d := range r.Differing {
		fmt.Fprintf(&b, "  %s: live %s, replayed %s\n", d.TripID, d.Live, d.Replayed)
	}
	list := func(title string, ids []string) {
		fmt.Fprintf(&b, "%s %d\n", title, len(ids))
		for _, id := range ids {
			fmt.Fprintf(&b, "  %s\n", id)
		}
	}
	list("in the log, missing from the live store:", r.MissingLive)
	list("in the live store, missing from the log:", r.MissingReplay)
	fmt.Fprintf(&b, "problems in the log: %d\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	if r.OK() {
		b.WriteString("OK: the log and the live store agree\n")
	} else {
		b.WriteString("DIFFERENT: the log and the live store disagree\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
