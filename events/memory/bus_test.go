package memory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hexride/hexride/events"
)

// TestBusDeliversInOrderThroughTheRouter: records reach every route of
// their topic in publish order, what a handler returns is delivered in
// turn, a refused event is dead-lettered, and the hash follows what was
// published.
func TestBusDeliversInOrderThroughTheRouter(t *testing.T) {
	run := func(n int) (string, []string) {
		b := New()
		var seen []string
		echo := func(name string) events.Handler {
			return func(_ context.Context, e events.Envelope) ([]events.Outgoing, error) {
				seen = append(seen, name+":"+e.ID)
				if e.ID == "bad" {
					return nil, events.Permanent(errors.New("refused"))
				}
				if e.Type != "ping" {
					return nil, nil
				}
				out, err := events.NewWithID("re-"+e.ID, "pong", e.Key, e.OccurredAt, struct{}{})
				return []events.Outgoing{{Topic: "b", Env: out}}, err
			}
		}
		r := events.NewRouter(b, b, nil)
		routes := []events.Route{
			{Group: "z", Topic: "a", Handler: events.One(echo("z"))},
			{Group: "y", Topic: "a", Handler: events.One(echo("y"))},
			{Reader: "x", Topic: "b", Handler: events.One(echo("x"))},
			{Reader: "dead", Topic: events.TopicDeadLetters, Handler: events.One(echo("dead"))},
		}
		r.Add(routes...)
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		b.WaitSubscribed(len(routes))
		at := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
		for i := range n {
			id := fmt.Sprint("p", i)
			if i == 1 {
				id = "bad"
			}
			e, err := events.NewWithID(id, "ping", "k", at, struct{}{})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Publish(ctx, events.Outgoing{Topic: "a", Env: e}); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// The dead letter's own id is positional; its time is the wall
		// clock's, so it is left out of what is compared.
		var kept []string
		for _, s := range seen {
			if !strings.HasPrefix(s, "dead:") {
				kept = append(kept, s)
			}
		}
		if len(kept) == len(seen) {
			t.Error("the refused event was not dead-lettered")
		}
		return b.Sum(), kept
	}
	sum1, seen := run(3)
	want := "y:p0,z:p0,y:bad,z:bad,y:p2,z:p2,x:re-p0,x:re-p0,x:re-p2,x:re-p2"
	if got := strings.Join(seen, ","); got != want {
		t.Errorf("delivered %s\nwant      %s", got, want)
	}
	if sum3, _ := run(4); sum3 == sum1 {
		t.Error("publishing more left the hash unchanged")
	}
}
