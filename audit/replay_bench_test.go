package audit_test

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/hexride/hexride/audit"
	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/events/kafka"
	"github.com/hexride/hexride/internal/devbroker"
	"github.com/hexride/hexride/internal/redistest"
	"github.com/hexride/hexride/ride"
	"github.com/hexride/hexride/trip"
)

var benchTrips = flag.Int("replay-trips", 2000, "trips in the log BenchmarkReplay replays (six transitions each)")

// BenchmarkReplay measures a whole replay, from reading trip.events to the
// last comparison, of a log of -replay-trips completed trips (six
// transitions each, on 4 partitions of the embedded broker), into an empty
// redis-server, compared with a live redis-server holding the same trips.
// The log is written directly (not through tripstate) so that setting up
// ten thousand trips takes seconds.
//
//	go test ./audit -run XXX -bench Replay -benchtime 3x -replay-trips 10000
func BenchmarkReplay(b *testing.B) {
	ctx := context.Background()
	broker, err := devbroker.StartLocal(0, 4, "", 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(broker.Close)
	live, into := redistest.Start(b).Client(b), redistest.Start(b).Client(b)
	pub := kafka.NewProducer(broker.Addrs(), 0)
	defer pub.Close()

	states := []struct{ state, cause string }{{ride.StateRequested, ev.TypeRideRequest}, {ride.StateOffered, ev.TypeDispatchOffer},
		{ride.StateAccepted, ev.TypeOfferAccept}, {ride.StateArrived, ev.TypeTripArrive}, {ride.StateInProgress, ev.TypeTripStart},
		{ride.StateCompleted, ev.TypeTripComplete}}
	start := time.Now().Add(-time.Hour)
	var outs []ev.Outgoing
	var finals []ride.TripUpdated
	for i := range *benchTrips {
		id := fmt.Sprintf("bench-%06d", i)
		tr := ride.Trip{TripID: id, RiderID: fmt.Sprintf("r-%d", i), Pickup: ride.LatLng{Lat: 37.77, Lng: -122.41},
			Dropoff: ride.LatLng{Lat: 37.78, Lng: -122.40}, RequestedAt: start}
		var u ride.TripUpdated
		for v, s := range states {
			tr.State, tr.Version, tr.UpdatedAt = s.state, int64(v+1), start.Add(time.Duration(v)*time.Second)
			switch s.state {
			case ride.StateOffered:
				tr.Offer, tr.Offered = &ride.Offer{OfferID: "o-" + id, DriverID: "d-" + id, ExpiresAt: start.Add(time.Minute)}, []string{"d-" + id}
			case ride.StateAccepted:
				tr.Offer, tr.DriverID = nil, "d-"+id
			}
			u = ride.TripUpdated{Trip: tr, Cause: s.cause}
			env, err := ev.NewWithID(fmt.Sprintf("trip-%s-v%d", id, v+1), ev.TypeTripUpdated, id, tr.UpdatedAt, u)
			if err != nil {
				b.Fatal(err)
			}
			outs = append(outs, ev.Outgoing{Topic: ev.TopicTripEvents, Env: env})
		}
		finals = append(finals, u)
	}
	for len(outs) > 0 {
		n := min(len(outs), 5000)
		if err := pub.PublishBulk(ctx, outs[:n]...); err != nil {
			b.Fatal(err)
		}
		outs = outs[n:]
	}
	if err := trip.NewStore(live).Restore(ctx, finals); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if err := into.FlushAll(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rep, err := audit.Replay(ctx, audit.ReplayConfig{Brokers: broker.Addrs(), Live: live, Into: into})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() || rep.Equal != *benchTrips {
			b.Fatalf("replay disagrees: %+v", rep)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*(*benchTrips)), "µs/trip")
}
