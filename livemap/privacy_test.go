package livemap

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/geo"
	"github.com/hexride/hexride/ride"
)

// TestRiderPointsAreCellCentres follows a trip whose pickup and drop-off
// are exact doorsteps through its whole life: every snapshot, delta and
// trip detail a viewer gets carries the centres of their resolution-8
// cells and never the points themselves.
func TestRiderPointsAreCellCentres(t *testing.T) {
	door, dest := ride.LatLng{Lat: 37.7749295, Lng: -122.4194155}, ride.LatLng{Lat: 37.8024712, Lng: -122.4058201}
	centre := func(p ride.LatLng) [2]int64 {
		c := geo.CellCenter(geo.LatLng{Lat: p.Lat, Lng: p.Lng}, RiderPointResolution)
		return [2]int64{int64(e5(c.Lat)), int64(e5(c.Lng))}
	}
	wantP, wantD := centre(door), centre(dest)
	exact := func(p ride.LatLng) [2]int64 { return [2]int64{int64(e5(p.Lat)), int64(e5(p.Lng))} }
	if wantP == exact(door) || wantD == exact(dest) {
		t.Fatal("a test point is its cell's centre; pick another")
	}
	a := mustNew(t)
	avail(t, a, "d-1", t0, true)
	ping(t, a, "d-1", t0, 37.76, -122.43)
	a.Tick(t0, false)
	var m viewerModel
	at := t0
	for v, state := range []string{ride.StateRequested, ride.StateOffered, ride.StateAccepted, ride.StateArrived, ride.StateInProgress} {
		u := tripAt(state, int64(v+1), "d-1", at)
		if state == ride.StateRequested {
			u = tripAt(state, 1, "", at)
		}
		u.Trip.Pickup, u.Trip.Dropoff = door, dest
		apply(t, a, ev.TypeTripUpdated, "t-1", at, u)
		at = at.Add(time.Second)
		f := a.Tick(at, true)
		for kind, b := range map[string][]byte{"snapshot": f.Snapshot, "delta": f.Delta} {
			if kind == "delta" && v == 0 {
				m.apply(t, f.Snapshot) // the viewer's first frame
				continue
			}
			var one viewerModel
			if kind == "snapshot" {
				one.apply(t, b)
			} else {
				m.apply(t, b)
				one = m
			}
			tr, ok := one.trips[0]
			if !ok {
				t.Fatalf("%s: %s has no trip in slot 0: %s", state, kind, b)
			}
			if got := [2][2]int64{{tr[3], tr[4]}, {tr[5], tr[6]}}; got != [2][2]int64{wantP, wantD} {
				t.Errorf("%s: %s carries pickup and drop-off %v; want the cell centres %v, %v", state, kind, got, wantP, wantD)
			}
			for _, p := range []ride.LatLng{door, dest} {
				for _, v := range exact(p) {
					if bytes.Contains(b, []byte(fmt.Sprint(v))) {
						t.Errorf("%s: %s contains %d, an exact coordinate of a rider's point: %s", state, kind, v, b)
					}
				}
			}
		}
		d, err := a.Inspect(KindTrip, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := [2][2]int64{exact(d.Trip.Pickup), exact(d.Trip.Dropoff)}; got != [2][2]int64{wantP, wantD} {
			t.Errorf("%s: map.detail shows pickup and drop-off %v; want the cell centres %v, %v", state, got, wantP, wantD)
		}
		for _, p := range []ride.LatLng{d.Trip.Pickup, d.Trip.Dropoff} {
			c := geo.CellCenter(geo.LatLng{Lat: p.Lat, Lng: p.Lng}, RiderPointResolution)
			if c.Lat != p.Lat || c.Lng != p.Lng {
				t.Errorf("%s: map.detail shows %v, not a cell centre", state, p)
			}
		}
	}
}
