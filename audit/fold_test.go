package audit

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/ride"
)

// update is the trip.events record tripstate writes for trip t1 at a
// version, state and cause.
func update(t *testing.T, v int64, state, cause string) kafkago.Message {
	t.Helper()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(v) * time.Second)
	u := ride.TripUpdated{Cause: cause, Trip: ride.Trip{TripID: "t1", State: state, Version: v, RiderID: "r", UpdatedAt: at}}
	e, err := ev.NewWithID("trip-t1-v"+string(rune('0'+v)), ev.TypeTripUpdated, "t1", at, u)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return kafkago.Message{Topic: ev.TopicTripEvents, Key: []byte("t1"), Value: b}
}

// TestFoldChecksTheLog feeds the fold what a log can hold, good and bad,
// and checks what it makes of each.
func TestFoldChecksTheLog(t *testing.T) {
	req := func(t *testing.T) kafkago.Message { return update(t, 1, ride.StateRequested, ev.TypeRideRequest) }
	offered := func(t *testing.T) kafkago.Message { return update(t, 2, ride.StateOffered, ev.TypeDispatchOffer) }
	accepted := func(t *testing.T) kafkago.Message { return update(t, 3, ride.StateAccepted, ev.TypeOfferAccept) }
	for _, tc := range []struct {
		name        string
		log         func(t *testing.T) []kafkago.Message
		version     int64
		state       string
		redelivered int
		problem     string // in the only problem; none when empty
	}{
		{"in order", func(t *testing.T) []kafkago.Message { return []kafkago.Message{req(t), offered(t), accepted(t)} },
			3, ride.StateAccepted, 0, ""},
		{"a byte-identical copy is a redelivery", func(t *testing.T) []kafkago.Message {
			return []kafkago.Message{req(t), offered(t), offered(t), accepted(t)}
		}, 3, ride.StateAccepted, 1, ""},
		{"an old version again, identical", func(t *testing.T) []kafkago.Message {
			return []kafkago.Message{req(t), offered(t), accepted(t), offered(t)}
		}, 3, ride.StateAccepted, 1, ""},
		{"a version again with other content", func(t *testing.T) []kafkago.Message {
			return []kafkago.Message{req(t), offered(t), update(t, 2, ride.StateCancelled, ev.TypeTripCancel)}
		}, 2, ride.StateOffered, 0, "v2 again after v2, with other content"},
		{"a version missing", func(t *testing.T) []kafkago.Message { return []kafkago.Message{req(t), accepted(t)} },
			3, ride.StateAccepted, 0, "v3 follows v1: versions missing"},
		{"a transition the table does not have", func(t *testing.T) []kafkago.Message {
			return []kafkago.Message{req(t), update(t, 2, ride.StateCompleted, ev.TypeTripComplete)}
		}, 2, ride.StateCompleted, 0, "REQUESTED→COMPLETED by trip.complete is not a transition"},
		{"a trip that does not start with a request", func(t *testing.T) []kafkago.Message {
			return []kafkago.Message{update(t, 1, ride.StateOffered, ev.TypeDispatchOffer)}
		}, 1, ride.StateOffered, 0, "a trip starts REQUESTED"},
		{"a record that is not an event", func(t *testing.T) []kafkago.Message {
			return []kafkago.Message{req(t), {Topic: ev.TopicTripEvents, Key: []byte("t1"), Value: []byte("{oops")}}
		}, 1, ride.StateRequested, 0, "does not decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, folds := &Report{}, map[string]*fold{}
			for i, m := range tc.log(t) {
				m.Offset = int64(i)
				step(rep, folds, m)
			}
			f := folds["t1"]
			if f == nil || f.version != tc.version || f.last.Trip.State != tc.state || rep.Redelivered != tc.redelivered {
				t.Fatalf("fold %+v, %d redelivered; want v%d %s, %d", f, rep.Redelivered, tc.version, tc.state, tc.redelivered)
			}
			switch {
			case tc.problem == "" && len(rep.Problems) > 0:
				t.Errorf("problems %v, want none", rep.Problems)
			case tc.problem != "" && (len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Problem, tc.problem)):
				t.Errorf("problems %v, want one saying %q", rep.Problems, tc.problem)
			}
		})
	}
}
