package livemap

import (
	"errors"
	"fmt"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// Detail is the answer to a viewer's map.inspect: one driver or one trip,
// with its recent history. It names the driver but never the rider.
type Detail struct {
	Type   string        `json:"type"`
	ID     string        `json:"id,omitempty"`
	Kind   string        `json:"kind"`
	Slot   int64         `json:"slot"`
	Driver *DriverDetail `json:"driver,omitempty"`
	Trip   *TripDetail   `json:"trip,omitempty"`
}

// DriverDetail describes one driver on the map.
type DriverDetail struct {
	DriverID  string         `json:"driver_id"`
	State     string         `json:"state"`
	Available bool           `json:"available"`
	Position  ride.LatLng    `json:"position"`
	SpeedMPS  *float64       `json:"speed_mps,omitempty"`
	LastPing  string         `json:"last_ping"`
	TripID    string         `json:"trip_id,omitempty"`
	OfferTrip string         `json:"offer_trip_id,omitempty"`
	Trail     []ride.LatLng  `json:"trail"`
	History   []HistoryEntry `json:"history"`
}

// TripDetail describes one trip on the map.
type TripDetail struct {
	TripID      string         `json:"trip_id"`
	State       string         `json:"state"`
	Version     int64          `json:"version"`
	DriverID    string         `json:"driver_id,omitempty"`
	Pickup      ride.LatLng    `json:"pickup"`
	Dropoff     ride.LatLng    `json:"dropoff"`
	RequestedAt string         `json:"requested_at"`
	History     []HistoryEntry `json:"history"`
}

// Kinds a viewer may inspect (the contract's, package protocol).
const (
	KindDriver = protocol.KindDriver
	KindTrip   = protocol.KindTrip
)

// ErrNotOnMap means the slot holds nothing (any more).
var ErrNotOnMap = errors.New("nothing on the map at that slot")

// Inspect describes what is at a slot now. A slot freed since the viewer's
// frame gives ErrNotOnMap; one reused since names its new occupant, which
// the detail's ids make visible.
func (a *Aggregator) Inspect(kind string, slot int64) (Detail, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := Detail{Type: MsgDetail, Kind: kind, Slot: slot}
	switch kind {
	case KindDriver:
		if slot < 0 || slot >= int64(len(a.bySlot)) || a.bySlot[slot] == nil {
			return Detail{}, fmt.Errorf("driver slot %d: %w", slot, ErrNotOnMap)
		}
		d := a.bySlot[slot]
		out.Driver = &DriverDetail{DriverID: d.id, State: DriverStateNames[d.state()], Available: d.available,
			Position: ride.LatLng{Lat: d.lat, Lng: d.lng}, SpeedMPS: d.speed, LastPing: ev.FormatTime(d.lastPing),
			TripID: d.trip, OfferTrip: d.offerTrip,
			Trail: append([]ride.LatLng{}, d.trail...), History: append([]HistoryEntry{}, d.history...)}
	case KindTrip:
		if slot < 0 || slot >= int64(len(a.tripAt)) || a.tripAt[slot] == nil {
			return Detail{}, fmt.Errorf("trip slot %d: %w", slot, ErrNotOnMap)
		}
		t := a.tripAt[slot]
		out.Trip = &TripDetail{TripID: t.id, State: t.state, Version: t.version, DriverID: t.driverID,
			Pickup: t.pickup, Dropoff: t.dropoff, RequestedAt: ev.FormatTime(t.requestedAt),
			History: append([]HistoryEntry{}, t.history...)}
	default:
		return Detail{}, fmt.Errorf("kind %q: want %q or %q", kind, KindDriver, KindTrip)
	}
	return out, nil
}
