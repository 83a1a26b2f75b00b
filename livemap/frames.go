package livemap

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// Wire message types of the viewer feed: the contract's (package protocol,
// asyncapi.yaml).
const (
	MsgSnapshot = protocol.MsgMapSnapshot
	MsgDelta    = protocol.MsgMapDelta
	MsgDetail   = protocol.MsgMapDetail
)

// Frames is what one tick produced: the delta from the previous tick, and
// the snapshot at this tick if anyone needed one.
type Frames struct {
	Tick     uint64
	Delta    []byte
	Snapshot []byte // nil unless asked for
}

// Tick publishes the changes since the previous tick as one delta frame,
// shared by every viewer that holds the previous frame, and, if
// wantSnapshot, the whole picture for viewers that do not. Positions in a
// delta are relative to the previous frame, which is why a viewer that
// missed one gets a snapshot and never a later delta.
func (a *Aggregator) Tick(now time.Time, wantSnapshot bool) Frames {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sweep(now)
	a.tick++
	a.lastAt = now
	at := ev.FormatTime(now)

	var b []byte
	b = append(b, `{"type":"`+MsgDelta+`","tick":`...)
	b = strconv.AppendUint(b, a.tick, 10)
	b = append(b, `,"at":"`+at+`","moved":[`...)
	// Drivers: moves as offsets, new drivers and state changes in full.
	var full []*driver
	n := 0
	for _, d := range a.dirtyD {
		d.dirty = false
		if d.slot < 0 {
			continue // taken off the map since it changed
		}
		lat, lng, st := e5(d.lat), e5(d.lng), d.state()
		if d.pubState < 0 || st != d.pubState {
			full = append(full, d)
			continue
		}
		if lat == d.pubLat && lng == d.pubLng {
			continue
		}
		b = appendInts(b, n > 0, int64(d.slot), int64(lat-d.pubLat), int64(lng-d.pubLng))
		n++
		d.pubLat, d.pubLng = lat, lng
	}
	a.dirtyD = a.dirtyD[:0]
	b = append(b, `],"drivers":[`...)
	for i, d := range full {
		d.pubLat, d.pubLng, d.pubState = e5(d.lat), e5(d.lng), d.state()
		b = appendInts(b, i > 0, int64(d.slot), int64(d.pubLat), int64(d.pubLng), int64(d.pubState))
	}
	b = append(b, `],"drivers_gone":[`...)
	for i, s := range a.goneD {
		b = appendInts(b, i > 0, int64(s))
	}
	a.freeD = append(a.freeD, a.goneD...)
	a.goneD = a.goneD[:0]

	// Trips: changed trips in full (they change a few times in their life).
	b = append(b, `],"trips":[`...)
	n = 0
	for _, t := range a.dirtyT {
		t.dirty = false
		if t.slot < 0 {
			continue
		}
		if now := a.tripTuple(t); !t.published || now != t.pub {
			t.published, t.pub = true, now
			b = appendInts(b, n > 0, now[:]...)
			n++
		}
	}
	a.dirtyT = a.dirtyT[:0]
	// A trip's line starts at its driver, whose slot can change when the
	// driver drops off the map and comes back: refresh those too.
	for _, t := range a.trips {
		if t.published && t.slot >= 0 && int64(a.driverSlotOf(t)) != t.pub[2] {
			t.pub = a.tripTuple(t)
			b = appendInts(b, n > 0, t.pub[:]...)
			n++
		}
	}
	b = append(b, `],"trips_gone":[`...)
	for i, s := range a.goneT {
		b = appendInts(b, i > 0, int64(s))
	}
	a.freeT = append(a.freeT, a.goneT...)
	a.goneT = a.goneT[:0]

	// Hexagons: counts that changed since the last frame, zeros included.
	counts := a.counts()
	b = append(b, `],"hex":[`...)
	n = 0
	for i, c := range counts {
		if a.pubCounts[i] != c {
			b = appendInts(b, n > 0, int64(i), int64(c[0]), int64(c[1]))
			n++
		}
	}
	for i := range a.pubCounts {
		if _, still := counts[i]; !still {
			b = appendInts(b, n > 0, int64(i), 0, 0)
			n++
		}
	}
	a.pubCounts = counts
	b = append(b, `],"cells":`...)
	b = a.appendCells(b, a.newCells)
	a.newCells = a.newCells[:0]
	b = a.appendStats(b, now)
	b = append(b, '}')

	f := Frames{Tick: a.tick, Delta: b}
	if wantSnapshot {
		f.Snapshot = a.snapshot(at)
	}
	return f
}

// snapshot encodes the picture as of the current tick (everything just
// published).
func (a *Aggregator) snapshot(at string) []byte {
	var b []byte
	b = append(b, `{"type":"`+MsgSnapshot+`","tick":`...)
	b = strconv.AppendUint(b, a.tick, 10)
	b = append(b, `,"at":"`+at+`","res":`...)
	b = strconv.AppendInt(b, int64(a.cfg.Resolution), 10)
	b = append(b, `,"drivers":[`...)
	n := 0
	for _, d := range a.bySlot {
		if d == nil || d.pubState < 0 {
			continue
		}
		b = appendInts(b, n > 0, int64(d.slot), int64(d.pubLat), int64(d.pubLng), int64(d.pubState))
		n++
	}
	b = append(b, `],"trips":[`...)
	n = 0
	for _, t := range a.tripAt {
		if t == nil || !t.published {
			continue
		}
		b = appendInts(b, n > 0, t.pub[:]...)
		n++
	}
	b = append(b, `],"hex":[`...)
	keys := make([]int32, 0, len(a.pubCounts))
	for i := range a.pubCounts {
		keys = append(keys, i)
	}
	slices.Sort(keys)
	for j, i := range keys {
		c := a.pubCounts[i]
		b = appendInts(b, j > 0, int64(i), int64(c[0]), int64(c[1]))
	}
	b = append(b, `],"cells":`...)
	all := make([]int32, len(a.cellList))
	for i := range all {
		all[i] = int32(i)
	}
	b = a.appendCells(b, all)
	b = a.appendStats(b, a.lastAt)
	return append(b, '}')
}

func (a *Aggregator) driverSlotOf(t *trip) int {
	if t.driverID == "" {
		return -1
	}
	if d := a.drivers[t.driverID]; d != nil && d.slot >= 0 {
		return int(d.slot)
	}
	return -1
}

// tripTuple is a trip on the wire: slot, state, driver slot (-1: none on
// the map), pickup and drop-off.
func (a *Aggregator) tripTuple(t *trip) [7]int64 {
	return [7]int64{int64(t.slot), int64(tripCodes[t.state]), int64(a.driverSlotOf(t)),
		int64(e5(t.pickup.Lat)), int64(e5(t.pickup.Lng)), int64(e5(t.dropoff.Lat)), int64(e5(t.dropoff.Lng))}
}

// counts are available drivers and open requests per cell, for cells with
// either.
func (a *Aggregator) counts() map[int32][2]int {
	m := map[int32][2]int{}
	for _, d := range a.bySlot {
		if d == nil || d.state() != DriverAvailable {
			continue
		}
		if i := a.cellIndex(d.cell); i >= 0 {
			c := m[i]
			c[0]++
			m[i] = c
		}
	}
	for _, t := range a.trips {
		if t.state != ride.StateRequested && t.state != ride.StateOffered {
			continue
		}
		if i := a.cellIndex(t.pickupCell); i >= 0 {
			c := m[i]
			c[1]++
			m[i] = c
		}
	}
	return m
}

// appendCells writes cell outlines: [index, lat, lng, lat, lng, ...] per
// cell, in e5 units. Computing them here keeps H3 out of the browser.
func (a *Aggregator) appendCells(b []byte, idx []int32) []byte {
	b = append(b, '[')
	for j, i := range idx {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(i), 10)
		for _, v := range a.cellList[i].Boundary() {
			b = appendInts(b, true, int64(e5(v.Lat)), int64(e5(v.Lng)))
		}
		b = append(b, ']')
	}
	return append(b, ']')
}

func (a *Aggregator) appendStats(b []byte, now time.Time) []byte {
	s, err := json.Marshal(a.figures(now))
	if err != nil {
		panic(err) // Stats holds only ints, floats and string maps
	}
	b = append(b, `,"stats":`...)
	return append(b, s...)
}

func appendInts(b []byte, comma bool, vs ...int64) []byte {
	for _, v := range vs {
		if comma {
			b = append(b, ',')
		}
		comma = true
		b = strconv.AppendInt(b, v, 10)
	}
	return b
}

// SnapshotMessage is the shape of a map.snapshot frame. Tick writes frames
// by hand for speed; tests decode real frames into these types strictly, and
// the AsyncAPI test holds them to the document.
type SnapshotMessage struct {
	Type    string    `json:"type"`
	Tick    uint64    `json:"tick"`
	At      string    `json:"at"`
	Res     int       `json:"res"`
	Drivers []int64   `json:"drivers"`
	Trips   []int64   `json:"trips"`
	Hex     []int64   `json:"hex"`
	Cells   [][]int64 `json:"cells"`
	Stats   Stats     `json:"stats"`
}

// DeltaMessage is the shape of a map.delta frame (see SnapshotMessage).
type DeltaMessage struct {
	Type        string    `json:"type"`
	Tick        uint64    `json:"tick"`
	At          string    `json:"at"`
	Moved       []int64   `json:"moved"`
	Drivers     []int64   `json:"drivers"`
	DriversGone []int64   `json:"drivers_gone"`
	Trips       []int64   `json:"trips"`
	TripsGone   []int64   `json:"trips_gone"`
	Hex         []int64   `json:"hex"`
	Cells       [][]int64 `json:"cells"`
	Stats       Stats     `json:"stats"`
}
