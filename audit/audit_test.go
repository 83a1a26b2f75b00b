package audit_test

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hexride/hexride/audit"
	"github.com/hexride/hexride/audit/audittest"
	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/internal/redistest"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
	"github.com/hexride/hexride/trip"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestAudit runs tripstate through a completed ride and a cancelled one,
// then reads the log back: the history of each trip, and replays of it
// compared with the live store as it is and as tampered with.
func TestAudit(t *testing.T) {
	p := audittest.Start(t)
	t.Run("history of the completed ride", func(t *testing.T) { testHistoryCompleted(t, p) })
	t.Run("history of the cancelled ride", func(t *testing.T) { testHistoryCancelled(t, p) })
	t.Run("history of an unknown trip", func(t *testing.T) {
		recs, err := audit.History(ctx(t), p.Brokers, "no-such-trip")
		if err != nil || len(recs) != 0 {
			t.Fatalf("got %v, %v; want no records and no error", recs, err)
		}
	})
	t.Run("replay agrees and publishes nothing", func(t *testing.T) { testReplayAgrees(t, p) })
	t.Run("replay finds tampering", func(t *testing.T) { testReplayTampered(t, p) })
	// Last: it adds to the log.
	t.Run("a redelivered command's re-published transition", func(t *testing.T) { testRedelivery(t, p) })
	t.Run("replay refuses a target that is not empty", func(t *testing.T) {
		_, err := audit.Replay(ctx(t), audit.ReplayConfig{Brokers: p.Brokers, Live: p.LiveRDB, Into: p.LiveRDB})
		if err == nil || !strings.Contains(err.Error(), "empty") {
			t.Fatalf("replay into the live store: got %v, want a refusal", err)
		}
	})
}

func testHistoryCompleted(t *testing.T, p *audittest.Platform) {
	recs, err := audit.History(ctx(t), p.Brokers, p.Completed)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		t.Log(r)
	}
	byKind := func(kind string) (out []audit.Record) {
		for _, r := range recs {
			if r.Kind == kind {
				out = append(out, r)
			}
		}
		return out
	}

	cmds := byKind(audit.KindCommand)
	wantCmds := []struct{ typ, by string }{
		{ev.TypeRideRequest, "rider r-1"}, {ev.TypeDispatchOffer, "dispatcher"}, {ev.TypeOfferAccept, "driver d-1"},
		{ev.TypeTripArrive, "driver d-1"}, {ev.TypeTripStart, "driver d-1"}, {ev.TypeTripComplete, "driver d-1"},
		{ev.TypeTripArrive, "driver d-1"}, // the one too many, dead-lettered
	}
	if len(cmds) != len(wantCmds) {
		t.Fatalf("got %d commands, want %d", len(cmds), len(wantCmds))
	}
	for i, w := range wantCmds {
		if cmds[i].Type != w.typ || cmds[i].By != w.by || cmds[i].EventID == "" || cmds[i].Topic != ev.TopicTripCommands {
			t.Errorf("command %d is %s by %q (id %q), want %s by %q", i, cmds[i].Type, cmds[i].By, cmds[i].EventID, w.typ, w.by)
		}
	}

	trs := byKind(audit.KindTransition)
	wantTrs := []struct{ from, state, cause string }{
		{"", ride.StateRequested, ev.TypeRideRequest},
		{ride.StateRequested, ride.StateOffered, ev.TypeDispatchOffer},
		{ride.StateOffered, ride.StateAccepted, ev.TypeOfferAccept},
		{ride.StateAccepted, ride.StateArrived, ev.TypeTripArrive},
		{ride.StateArrived, ride.StateInProgress, ev.TypeTripStart},
		{ride.StateInProgress, ride.StateCompleted, ev.TypeTripComplete},
	}
	if len(trs) != len(wantTrs) {
		t.Fatalf("got %d transitions, want %d", len(trs), len(wantTrs))
	}
	for i, w := range wantTrs {
		r := trs[i]
		if r.From != w.from || r.State != w.state || r.Cause != w.cause || r.Version != int64(i+1) || r.Repeat {
			t.Errorf("transition %d is %q→%s v%d by %s, want %q→%s v%d by %s", i, r.From, r.State, r.Version, r.Cause, w.from, w.state, i+1, w.cause)
		}
	}

	// Each transition comes after the command that caused it, and before
	// the next command.
	at := map[string]int{}
	for i, r := range recs {
		at[r.Kind+r.EventID] = i
	}
	for i := range trs {
		c, tr := at[audit.KindCommand+cmds[i].EventID], at[audit.KindTransition+trs[i].EventID]
		next := at[audit.KindCommand+cmds[i+1].EventID]
		if !(c < tr && tr < next) {
			t.Errorf("transition %d is at %d, not between its command at %d and the next at %d", i, tr, c, next)
		}
	}
	// Within one partition, log order.
	last := map[string]int64{}
	for _, r := range recs {
		k := r.Topic + "/" + string(rune('0'+r.Partition))
		if o, ok := last[k]; ok && r.Offset <= o {
			t.Errorf("%s@%d comes after @%d", k, r.Offset, o)
		}
		last[k] = r.Offset
	}

	dls := byKind(audit.KindDeadLetter)
	if len(dls) != 1 || dls[0].Type != ev.TypeTripArrive || !strings.Contains(dls[0].Reason, "illegal in state COMPLETED") {
		t.Errorf("dead letters %v, want the trip.arrive refused in COMPLETED", dls)
	}
	if len(recs) == 0 || recs[len(recs)-1].Kind != audit.KindDeadLetter {
		t.Errorf("the dead letter is not the last record")
	}

	var riderStates []string
	offers := 0
	for _, r := range byKind(audit.KindPush) {
		switch {
		case r.To == p.Rider && r.Type == protocol.PushTrip:
			riderStates = append(riderStates, r.State)
		case r.To == p.Driver && r.Type == protocol.PushOffer:
			offers++
		}
	}
	want := []string{ride.StateRequested, ride.StateOffered, ride.StateAccepted, ride.StateArrived, ride.StateInProgress, ride.StateCompleted}
	if !slices.Equal(riderStates, want) || offers != 1 {
		t.Errorf("rider's trip pushes %v and driver's offers %d, want %v and 1", riderStates, offers, want)
	}
}

func testHistoryCancelled(t *testing.T, p *audittest.Platform) {
	recs, err := audit.History(ctx(t), p.Brokers, p.Cancelled)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		switch r.Kind {
		case audit.KindCommand:
			got = append(got, r.Type)
		case audit.KindTransition:
			got = append(got, r.From+"→"+r.State)
		case audit.KindDeadLetter:
			t.Errorf("the cancelled trip has no dead letter, got %v", r)
		}
	}
	want := []string{ev.TypeRideRequest, "→REQUESTED", ev.TypeDispatchOffer, "REQUESTED→OFFERED", ev.TypeTripCancel, "OFFERED→CANCELLED"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, r := range recs {
		if r.Kind == audit.KindTransition && r.State == ride.StateCancelled && r.Reason != "cancelled_by_rider: changed my mind" {
			t.Errorf("the cancellation's reason is %q", r.Reason)
		}
	}
}

func testReplayAgrees(t *testing.T, p *audittest.Platform) {
	before, err := audittest.EndOffsets(p.Brokers)
	if err != nil {
		t.Fatal(err)
	}
	into := redistest.Start(t).Client(t)
	rep, err := audit.Replay(ctx(t), audit.ReplayConfig{Brokers: p.Brokers, Live: p.LiveRDB, Into: into})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	_ = rep.Write(&out)
	t.Log(out.String())
	if !rep.OK() || rep.Trips != 2 || rep.Equal != 2 || rep.Records != 9 {
		t.Errorf("got %d trips, %d equal from %d records, OK %v; want 2, 2 from 9, OK", rep.Trips, rep.Equal, rep.Records, rep.OK())
	}
	after, err := audittest.EndOffsets(p.Brokers)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("end offsets moved during the replay: %v, then %v", before, after)
	}
	// The rebuilt hashes are what tripstate wrote, byte for byte.
	for _, id := range []string{p.Completed, p.Cancelled} {
		live, err := p.LiveRDB.HGetAll(ctx(t), trip.TripKey(id)).Result()
		if err != nil {
			t.Fatal(err)
		}
		got, err := into.HGetAll(ctx(t), trip.TripKey(id)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(live, got) || len(got) != 3 {
			t.Errorf("trip %s rebuilt as %v, live %v", id, got, live)
		}
	}
}

func testReplayTampered(t *testing.T, p *audittest.Platform) {
	editJSON := func(id string, edit func(*ride.Trip)) func(context.Context, redis.Cmdable) error {
		return func(c context.Context, rdb redis.Cmdable) error {
			raw, err := rdb.HGet(c, trip.TripKey(id), "json").Result()
			if err != nil {
				return err
			}
			var tr ride.Trip
			if err := json.Unmarshal([]byte(raw), &tr); err != nil {
				return err
			}
			edit(&tr)
			b, _ := json.Marshal(tr)
			return rdb.HSet(c, trip.TripKey(id), "json", b).Err()
		}
	}
	cases := []struct {
		name                               string
		tamper                             func(context.Context, redis.Cmdable) error
		differing, missingLive, missingLog []string
	}{
		{name: "state", tamper: editJSON(p.Cancelled, func(tr *ride.Trip) { tr.State = ride.StateCompleted }),
			differing: []string{p.Cancelled}},
		{name: "a coordinate", tamper: editJSON(p.Completed, func(tr *ride.Trip) { tr.Dropoff.Lat += 1e-9 }),
			differing: []string{p.Completed}},
		{name: "only the version field", tamper: func(c context.Context, rdb redis.Cmdable) error {
			return rdb.HSet(c, trip.TripKey(p.Completed), "v", 7).Err()
		}, differing: []string{p.Completed}},
		{name: "a trip deleted", tamper: func(c context.Context, rdb redis.Cmdable) error {
			return rdb.Del(c, trip.TripKey(p.Cancelled)).Err()
		}, missingLive: []string{p.Cancelled}},
		{name: "a trip the log never had", tamper: func(c context.Context, rdb redis.Cmdable) error {
			return rdb.HSet(c, trip.TripKey("forged"), "v", 1, "json", `{"trip_id":"forged"}`).Err()
		}, missingLog: []string{"forged"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ctx(t)
			restore := snapshot(t, p.LiveRDB)
			defer restore()
			if err := tc.tamper(c, p.LiveRDB); err != nil {
				t.Fatal(err)
			}
			rep, err := audit.Replay(c, audit.ReplayConfig{Brokers: p.Brokers, Live: p.LiveRDB, Into: redistest.Start(t).Client(t)})
			if err != nil {
				t.Fatal(err)
			}
			var differing []string
			for _, d := range rep.Differing {
				differing = append(differing, d.TripID)
			}
			if rep.OK() || !slices.Equal(differing, tc.differing) || !slices.Equal(rep.MissingLive, tc.missingLive) ||
				!slices.Equal(rep.MissingReplay, tc.missingLog) || len(rep.Problems) != 0 {
				var out strings.Builder
				_ = rep.Write(&out)
				t.Errorf("want differing %v, missing live %v, missing from the log %v; got\n%s", tc.differing, tc.missingLive, tc.missingLog, out.String())
			}
		})
	}
}

// snapshot saves every trip hash of rdb; the function it returns puts
// them back as they were and deletes any other.
func snapshot(t *testing.T, rdb *redis.Client) func() {
	c := context.Background()
	keys, err := rdb.Keys(c, trip.TripKey("*")).Result()
	if err != nil {
		t.Fatal(err)
	}
	saved := map[string]map[string]string{}
	for _, k := range keys {
		if saved[k], err = rdb.HGetAll(c, k).Result(); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		now, err := rdb.Keys(c, trip.TripKey("*")).Result()
		if err == nil && len(now) > 0 {
			err = rdb.Del(c, now...).Err()
		}
		for k, h := range saved {
			if err == nil {
				err = rdb.HSet(c, k, h).Err()
			}
		}
		if err != nil {
			t.Fatalf("put the live trips back: %v", err)
		}
	}
}

// testRedelivery sends the completed trip's trip.complete again, as a
// consumer restart would redeliver it. Tripstate sees the event id applied
// and publishes the transition's outputs again, with the same ids: the
// log then holds v6 twice, which replay must take for what it is.
func testRedelivery(t *testing.T, p *audittest.Platform) {
	var complete ev.Envelope
	for _, e := range p.Sent {
		if e.Key == p.Completed && e.Type == ev.TypeTripComplete {
			complete = e
		}
	}
	before := p.End(t, ev.TopicTripEvents)
	p.Resend(t, complete)
	audittest.WaitFor(t, "the transition published again", func() bool { return p.End(t, ev.TopicTripEvents) == before+1 })

	rep, err := audit.Replay(ctx(t), audit.ReplayConfig{Brokers: p.Brokers, Live: p.LiveRDB, Into: redistest.Start(t).Client(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Redelivered != 1 || rep.Equal != 2 {
		var out strings.Builder
		_ = rep.Write(&out)
		t.Errorf("want OK with one redelivered copy, got\n%s", out.String())
	}
	recs, err := audit.History(ctx(t), p.Brokers, p.Completed)
	if err != nil {
		t.Fatal(err)
	}
	var repeats []int64
	for _, r := range recs {
		if r.Kind == audit.KindTransition && r.Repeat {
			repeats = append(repeats, r.Version)
		}
	}
	if !slices.Equal(repeats, []int64{6}) {
		t.Errorf("transitions marked as repeats: versions %v, want [6]", repeats)
	}
}
