// Package memory is an in-memory log behind events.Publisher and
// events.Subscriber, for the deterministic simulation: one partition per
// topic, nothing delivered until Drain is called, then every record in
// the order it was published, to each route of its topic in name order,
// all on the caller's goroutine. The same router, handlers and middleware
// run on it as on Kafka; only the transport is gone.
package memory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"strings"
	"sync"

	"github.com/hexride/hexride/events"
)

// Bus is the in-memory log. Its zero value is not ready; use New.
type Bus struct {
	mu      sync.Mutex
	cond    *sync.Cond
	next    map[string]int64 // topic → next offset
	queue   []events.Record
	subs    map[string][]sub // topic → routes, by name
	nsubs   int
	sum     hash.Hash
	records int
}

type sub struct {
	name    string
	deliver func(context.Context, []events.Record) error
}

// New returns an empty bus.
func New() *Bus {
	b := &Bus{next: map[string]int64{}, subs: map[string][]sub{}, sum: sha256.New()}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// Publish appends outs to their topics' logs, to be delivered by Drain.
func (b *Bus) Publish(_ context.Context, outs ...events.Outgoing) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, o := range outs {
		v, err := o.Env.Marshal()
		if err != nil {
			return err
		}
		off := b.next[o.Topic]
		b.next[o.Topic] = off + 1
		b.queue = append(b.queue, events.Record{Topic: o.Topic, Offset: off, Key: []byte(o.Env.Key), Value: v})
		fmt.Fprintf(b.sum, "%s\x00%s\x00%s\n", o.Topic, o.Env.Key, v)
		b.records++
	}
	return nil
}

// Subscribe registers r and blocks until ctx ends; records reach it when
// Drain is called. A route that reads without a group is caught up at once
// (the log starts empty), and an owned route owns partition 0.
func (b *Bus) Subscribe(ctx context.Context, r events.Route, deliver func(context.Context, []events.Record) error) error {
	if r.Owned != nil {
		if r.Owned.Assigned != nil {
			r.Owned.Assigned([]int{0})
		}
		if r.Owned.CaughtUp != nil {
			r.Owned.CaughtUp(0)
		}
	}
	if r.Group == "" && r.CaughtUp != nil {
		r.CaughtUp()
	}
	b.mu.Lock()
	subs := append(b.subs[r.Topic], sub{name: r.Name(), deliver: deliver})
	slices.SortFunc(subs, func(x, y sub) int { return strings.Compare(x.name, y.name) })
	b.subs[r.Topic] = subs
	b.nsubs++
	b.cond.Broadcast()
	b.mu.Unlock()
	<-ctx.Done()
	return nil
}

// WaitSubscribed blocks until n routes have subscribed.
func (b *Bus) WaitSubscribed(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.nsubs < n {
		b.cond.Wait()
	}
}

// Drain delivers every queued record, and every record that delivering
// them publishes, until the queue is empty. It stops at the first error a
// route returns.
func (b *Bus) Drain(ctx context.Context) error {
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.mu.Unlock()
			return nil
		}
		rec := b.queue[0]
		b.queue = b.queue[1:]
		subs := b.subs[rec.Topic]
		b.mu.Unlock()
		for _, s := range subs {
			if err := s.deliver(ctx, []events.Record{rec}); err != nil {
				return fmt.Errorf("deliver %s@%d to %s: %w", rec.Topic, rec.Offset, s.name, err)
			}
		}
	}
}

// Sum is a hash of every record published so far, in order: two runs that
// decided the same things have the same sum.
func (b *Bus) Sum() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return hex.EncodeToString(b.sum.Sum(nil))
}

// Records is how many records were published.
func (b *Bus) Records() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.records
}
