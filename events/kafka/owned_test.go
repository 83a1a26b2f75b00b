package kafka

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hexride/hexride/events"
)

// ownedView is a handler's per-partition state for TestConsumeOwned: the
// keys opened and not yet closed, with the offset that opened each.
type ownedView struct {
	mu       sync.Mutex
	open     map[int]map[string]int64 // partition → key → opening offset
	first    map[int]int64            // first offset handled per partition
	assigned [][]int
	caught   map[int]bool
}

func newOwnedView() *ownedView {
	return &ownedView{open: map[int]map[string]int64{}, first: map[int]int64{}, caught: map[int]bool{}}
}

func (v *ownedView) own() events.Ownership {
	return events.Ownership{
		Assigned: func(ps []int) {
			v.mu.Lock()
			defer v.mu.Unlock()
			v.assigned = append(v.assigned, ps)
		},
		CaughtUp: func(p int) {
			v.mu.Lock()
			defer v.mu.Unlock()
			v.caught[p] = true
		},
		Floor: func(p int, next int64) int64 {
			v.mu.Lock()
			defer v.mu.Unlock()
			for _, off := range v.open[p] {
				next = min(next, off)
			}
			return next
		},
	}
}

func (v *ownedView) handle(ctx context.Context, e events.Envelope) error {
	if e.Source == nil {
		return fmt.Errorf("no position for %s", e.ID)
	}
	pos := *e.Source
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.first[pos.Partition]; !ok {
		v.first[pos.Partition] = pos.Offset
	}
	if v.open[pos.Partition] == nil {
		v.open[pos.Partition] = map[string]int64{}
	}
	if e.Type == "open" {
		v.open[pos.Partition][e.Key] = pos.Offset
	} else {
		delete(v.open[pos.Partition], e.Key)
	}
	return nil
}

// TestConsumeOwnedRebuildsFromTheFloor: a member that takes over a partition
// reads it again from the oldest event its state still needs (the floor),
// not from where the last owner had got to, so state held in memory comes
// back; it is told which partitions it owns and when each has caught up.
func TestConsumeOwnedRebuildsFromTheFloor(t *testing.T) {
	const topic = "owned.test"
	brokers := startBroker(t, 1, topic)
	p := NewProducer(brokers, time.Millisecond)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	send := func(typ, key string) {
		t.Helper()
		e, err := events.New(typ, key, time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Publish(ctx, events.Outgoing{Topic: topic, Env: e}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := ConsumerConfig{Brokers: brokers, Group: "owned-test", Topic: topic, SessionTimeout: 2 * time.Second}
	run := func(v *ownedView) (stop func()) {
		mctx, mcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- ConsumeOwned(mctx, cfg, v.own(), v.handle) }()
		return func() {
			mcancel()
			if err := <-done; err != nil {
				t.Errorf("ConsumeOwned: %v", err)
			}
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	send("close", "a") // offset 0: nothing open
	send("open", "x")  // offset 1: still open when the first member stops
	send("open", "y")  // offset 2
	send("close", "y") // offset 3
	a := newOwnedView()
	stopA := run(a)
	waitFor("the first member to catch up", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.caught[0] && len(a.open[0]) == 1
	})
	stopA()
	if a.first[0] != 0 || len(a.assigned) == 0 || len(a.assigned[0]) != 1 {
		t.Fatalf("first member: first offset %d, assignments %v", a.first[0], a.assigned)
	}

	b := newOwnedView()
	stopB := run(b)
	defer stopB()
	waitFor("the second member to catch up", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.caught[0]
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.first[0] != 1 {
		t.Errorf("second member started at offset %d, want 1 (the oldest open key)", b.first[0])
	}
	if _, ok := b.open[0]["x"]; !ok || len(b.open[0]) != 1 {
		t.Errorf("second member's open keys %v, want only x", b.open[0])
	}
}
