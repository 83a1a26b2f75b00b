package kafka

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hexride/hexride/events"
)

// TestTailReadsFromATimeAndFollows checks what a view rebuilt from the log
// relies on: events stamped before From are not read, every later one is,
// in order per key; CaughtUp comes once everything that was there at the
// start is handled; and events written afterwards keep arriving.
func TestTailReadsFromATimeAndFollows(t *testing.T) {
	const topic, partitions = "tail.test", 3
	brokers := startBroker(t, partitions, topic)
	p := NewProducer(brokers, time.Millisecond)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	publish := func(batch string, n int) {
		t.Helper()
		for i := range n {
			e, err := events.NewWithID(fmt.Sprintf("%s-%d", batch, i), "test", fmt.Sprintf("k%d", i%5), time.Now(), i)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Publish(ctx, events.Outgoing{Topic: topic, Env: e}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish("old", 20)
	time.Sleep(20 * time.Millisecond) // broker timestamps have millisecond resolution
	from := time.Now()
	publish("new", 30)

	var mu sync.Mutex
	seen := map[string]bool{}
	var atCaughtUp int
	caught := make(chan struct{})
	tctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Tail(tctx, TailConfig{Brokers: brokers, Topic: topic, Name: "tail-test", From: from, CaughtUp: func() {
			mu.Lock()
			atCaughtUp = len(seen)
			mu.Unlock()
			close(caught)
		}}, func(_ context.Context, es []events.Envelope) error {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range es {
				seen[e.ID] = true
			}
			return nil
		})
	}()
	select {
	case <-caught:
	case <-ctx.Done():
		t.Fatal("Tail never caught up")
	}
	mu.Lock()
	if atCaughtUp != 30 {
		t.Errorf("caught up after %d events, want the 30 written since From", atCaughtUp)
	}
	for id := range seen {
		if id[:3] == "old" {
			t.Errorf("read %s, written before From", id)
		}
	}
	mu.Unlock()
	publish("later", 10)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == 40 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("saw %d events, want 40", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Tail: %v", err)
	}
}
