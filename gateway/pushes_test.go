package gateway

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/internal/redistest"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// TestNumberAll numbers a batch in one round trip on a Redis that has never
// seen the script, in order per user, and numbers nothing twice.
func TestNumberAll(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	if err := rdb.SAdd(ctx, presenceKey("a"), "gw-1").Err(); err != nil {
		t.Fatal(err)
	}
	p := &Pushes{rdb: rdb}
	batch := []ToNumber{
		{ID: "p1", User: "a", Msg: []byte(`{"type":"trip","n":1}`)},
		{ID: "p2", User: "b", Msg: []byte(`{"type":"trip","n":2}`)},
		{ID: "p3", User: "a", Msg: []byte(`{"type":"trip","n":3}`)},
	}
	got, err := p.NumberAll(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		seq      int64
		msg      string
		replicas int
	}{{1, `{"seq":1,"type":"trip","n":1}`, 1}, {1, `{"seq":1,"type":"trip","n":2}`, 0}, {2, `{"seq":2,"type":"trip","n":3}`, 1}}
	for i, w := range want {
		if n := got[i]; !n.Fresh || n.Seq != w.seq || string(n.Msg) != w.msg || len(n.Replicas) != w.replicas {
			t.Fatalf("push %d: %+v (%s); want fresh seq %d %s with %d replicas", i, n, n.Msg, w.seq, w.msg, w.replicas)
		}
	}
	again, err := p.NumberAll(ctx, append(batch, ToNumber{ID: "p4", User: "a", Msg: []byte(`{"type":"trip","n":4}`)}))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range again[:3] {
		if n.Fresh || n.Seq != got[i].Seq {
			t.Fatalf("redelivered push %d: %+v; want not fresh, seq %d", i, n, got[i].Seq)
		}
	}
	if n := again[3]; !n.Fresh || n.Seq != 3 {
		t.Fatalf("new push after redeliveries: %+v; want fresh seq 3", n)
	}
	if _, err := p.NumberAll(ctx, []ToNumber{{ID: "x", User: "a", Msg: []byte(`{}`)}}); err == nil {
		t.Fatal("an empty message was numbered")
	}
}

// TestHandlePushesRefusesBadPushes checks what HandlePushes rejects for
// good: such pushes are dead-lettered, not retried forever.
func TestHandlePushesRefusesBadPushes(t *testing.T) {
	s, _ := startGateway(t)
	at := time.Now()
	for _, tc := range []struct {
		name string
		typ  string
		push protocol.Push
	}{
		{"not a push", "trip.updated", protocol.Push{UserID: "a", Message: []byte(`{"type":"trip"}`)}},
		{"no user", ev.TypePush, protocol.Push{Message: []byte(`{"type":"trip"}`)}},
		{"empty message", ev.TypePush, protocol.Push{UserID: "a", Message: []byte(`{}`)}},
		{"message not an object", ev.TypePush, protocol.Push{UserID: "a", Message: []byte(`[1]`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ev.NewWithID(fmt.Sprintf("bad-%s", tc.name), tc.typ, "a", at, tc.push)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.handlePushes(context.Background(), []ev.Envelope{e}); !errors.Is(err, ev.ErrPermanent) {
				t.Fatalf("err = %v; want a permanent error", err)
			}
		})
	}
}

// TestLateLocationsAreDropped: a driver.location relay about a trip that has
// ended is not numbered or delivered; the rest of the batch is, in order.
func TestLateLocationsAreDropped(t *testing.T) {
	s, _ := startGateway(t)
	ctx := context.Background()
	at := time.Now()
	push := func(id, msg string) ev.Envelope {
		e, err := ev.NewWithID(id, ev.TypePush, "r-1", at, protocol.Push{UserID: "r-1", Message: []byte(msg)})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	batch := []ev.Envelope{
		push("a", `{"type":"driver.location","trip_id":"live-1","lat":1,"lng":2}`),
		push("b", `{"type":"trip","trip_id":"ended-1","state":"COMPLETED"}`),
		push("c", `{"type":"driver.location","trip_id":"ended-1","lat":1,"lng":2}`),
		push("d", `{"type":"driver.location","trip_id":"live-1","lat":3,"lng":4}`),
	}
	if err := s.handlePushes(ctx, batch); err != nil {
		t.Fatal(err)
	}
	msgs, gap, err := s.pushes.Since(ctx, ride.UserKey(ride.RoleRider, "r-1"), 0) // the user key, as it is numbered under
	if err != nil || gap {
		t.Fatalf("read the log: %v (gap %v)", err, gap)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, string(m.Msg))
	}
	want := []string{
		`{"seq":1,"type":"driver.location","trip_id":"live-1","lat":1,"lng":2}`,
		`{"seq":2,"type":"trip","trip_id":"ended-1","state":"COMPLETED"}`,
		`{"seq":3,"type":"driver.location","trip_id":"live-1","lat":3,"lng":4}`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("log %q\nwant %q", got, want)
	}
}
