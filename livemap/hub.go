package livemap

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	ev "github.com/hexride/hexride/events"
)

var (
	viewersGauge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "hexride_map_viewers", Help: "Viewers watching the live map on this gateway.",
	})
	framesSent = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hexride_map_frames_sent_total", Help: "Map frames handed to viewer sockets, by type (delta or snapshot).",
	}, []string{"type"})
	framesDropped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "hexride_map_frames_dropped_total", Help: "Map frames a viewer missed because it had not taken the previous one (it gets a snapshot instead).",
	})
	bytesSent = promauto.NewCounter(prometheus.CounterOpts{
		Name: "hexride_map_bytes_sent_total", Help: "Bytes of map frames handed to viewer sockets.",
	})
	tickSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "hexride_map_tick_seconds", Help: "Time to build one tick's frames.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
	})
)

// Hub ticks the aggregate at a fixed rate and hands each viewer the newest
// frame it can use. A viewer never holds more than one unsent frame: a
// newer frame replaces it (latest frame wins), so a slow viewer costs
// memory for one frame and no time at all to anyone else.
type Hub struct {
	agg   *Aggregator
	every time.Duration

	mu      sync.Mutex
	viewers map[*Viewer]struct{}
}

// NewHub ticks agg every interval (250 ms when zero: four frames a second,
// which with interpolation in the page looks continuous and keeps a viewer's
// feed small).
func NewHub(agg *Aggregator, every time.Duration) *Hub {
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	return &Hub{agg: agg, every: every, viewers: map[*Viewer]struct{}{}}
}

// Aggregator is the state the hub publishes.
func (h *Hub) Aggregator() *Aggregator { return h.agg }

// Viewer is one subscriber's mailbox.
type Viewer struct {
	hub  *Hub
	wake chan struct{} // has a value when pending is set

	mu          sync.Mutex
	pending     []byte
	pendingTick uint64
	pendingType string
	// have is the tick of the last frame the viewer took: a delta of tick
	// have+1 is the only delta it can apply.
	have    uint64
	dropped uint64
}

// Subscribe registers a viewer; its first frame is the next tick's snapshot.
func (h *Hub) Subscribe() *Viewer {
	v := &Viewer{hub: h, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	h.viewers[v] = struct{}{}
	h.mu.Unlock()
	viewersGauge.Inc()
	return v
}

// Close unsubscribes the viewer.
func (v *Viewer) Close() {
	h := v.hub
	h.mu.Lock()
	_, ok := h.viewers[v]
	delete(h.viewers, v)
	h.mu.Unlock()
	if ok {
		viewersGauge.Dec()
	}
}

// Ready has a value when a frame is waiting; call Take then.
func (v *Viewer) Ready() <-chan struct{} { return v.wake }

// Take returns the waiting frame, or nil if there is none.
func (v *Viewer) Take() []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	b := v.pending
	if b == nil {
		return nil
	}
	v.have, v.pending = v.pendingTick, nil
	framesSent.WithLabelValues(v.pendingType).Inc()
	bytesSent.Add(float64(len(b)))
	return b
}

// Dropped is how many frames this viewer missed.
func (v *Viewer) Dropped() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dropped
}

// needsSnapshot says whether the viewer cannot apply the delta of tick t.
func (v *Viewer) needsSnapshot(t uint64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.pending != nil || v.have == 0 || v.have != t-1
}

func (v *Viewer) offer(f Frames) {
	v.mu.Lock()
	if v.pending != nil {
		// The viewer has not taken the last frame: it never will. Replace it;
		// a delta would not apply on top of what the viewer has, so it gets
		// the snapshot.
		v.pending = nil
		v.dropped++
		framesDropped.Inc()
	}
	if v.have != 0 && v.have == f.Tick-1 {
		v.pending, v.pendingType = f.Delta, "delta"
	} else if f.Snapshot != nil {
		v.pending, v.pendingType = f.Snapshot, "snapshot"
	}
	if v.pending != nil {
		v.pendingTick = f.Tick
	}
	has := v.pending != nil
	v.mu.Unlock()
	if has {
		select {
		case v.wake <- struct{}{}:
		default: // already signalled
		}
	}
}

// Step builds one tick's frames and offers them to every viewer.
func (h *Hub) Step(now time.Time) {
	start := time.Now()
	h.mu.Lock()
	vs := make([]*Viewer, 0, len(h.viewers))
	for v := range h.viewers {
		vs = append(vs, v)
	}
	h.mu.Unlock()
	next := h.agg.nextTick()
	want := false
	for _, v := range vs {
		if v.needsSnapshot(next) {
			want = true
			break
		}
	}
	f := h.agg.Tick(now, want)
	for _, v := range vs {
		v.offer(f)
	}
	tickSeconds.Observe(time.Since(start).Seconds())
}

// nextTick is the number the next Tick will have.
func (a *Aggregator) nextTick() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tick + 1
}

// RunTicker steps the hub every interval until ctx ends.
func (h *Hub) RunTicker(ctx context.Context) error {
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			h.Step(now)
		}
	}
}

// Availability is the durable record of the drivers' availability
// (package supply).
type Availability interface {
	Available(ctx context.Context) (map[string]bool, error)
}

// Nothing of the aggregate is kept anywhere: every start builds it again,
// from the drivers' availability record (Prepare), driver.events since
// StaleAfter ago (DriversFrom: an older position is not drawn) and the whole
// of trip.events the broker still holds (trips are few and may last long),
// read in no consumer group. The routes are in internal/platform; RunTicker
// sends the frames.

// Prepare seeds the aggregate with the drivers' availability record, before
// the log is read. The router retries it until it succeeds.
func (h *Hub) Prepare(avail Availability) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if avail == nil {
			return nil
		}
		ids, err := avail.Available(ctx)
		if err != nil {
			return fmt.Errorf("read the drivers' availability: %w", err)
		}
		h.agg.SeedAvailable(ids)
		return nil
	}
}

// DriversFrom is the time of the oldest ping the map is rebuilt from.
func (h *Hub) DriversFrom() time.Time { return time.Now().Add(-h.agg.cfg.StaleAfter - time.Second) }

// Handler applies a topic's events to the aggregate. Like every consumer,
// the map refuses what it cannot read rather than skipping it silently: the
// dead letter names this reader.
func (h *Hub) Handler(topic string) ev.BatchHandler {
	word := map[string]string{ev.TopicDriverEvents: "driver", ev.TopicTripEvents: "trip"}[topic]
	return func(_ context.Context, es []ev.Envelope) ([]ev.Outgoing, error) {
		for _, e := range es {
			if !slices.Contains(ev.TopicTypes[topic], e.Type) {
				return nil, ev.Permanent(fmt.Errorf("livemap: unknown %s event type %q", word, e.Type))
			}
			if err := h.agg.Apply(e); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
}

// Reader names the map's readers in logs, metrics and dead letters.
const Reader = "gateway-map"
