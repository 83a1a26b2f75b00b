package dispatch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/redis/go-redis/v9"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/internal/redistest"
	"github.com/hexride/hexride/ride"
)

// offerCounter is a publisher that only remembers the last offer, so the
// benchmark measures the dispatcher, not a broker.
type offerCounter struct{ last ev.Outgoing }

func (o *offerCounter) Publish(_ context.Context, outs ...ev.Outgoing) error {
	if len(outs) > 0 {
		o.last = outs[len(outs)-1]
	}
	return nil
}

// BenchmarkRequestToOffer is the dispatcher's share of request→offer: a
// trip.updated REQUESTED event in, the dispatch.offer command out (decoded,
// queried, reserved, encoded), with 100,000 drivers indexed over a
// 30 × 30 km city. The "redis-reservations" variant includes the shared
// reservation round trip to a real redis-server, as in production.
func BenchmarkRequestToOffer(b *testing.B) {
	b.Run("drivers=100000", func(b *testing.B) { benchRequestToOffer(b, nil) })
	b.Run("drivers=100000/redis-reservations", func(b *testing.B) {
		srv := redistest.Start(b)
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
		b.Cleanup(func() { rdb.Close() })
		benchRequestToOffer(b, RedisReservations{RDB: rdb})
	})
}

func benchRequestToOffer(b *testing.B, res Reservations) {
	const drivers = 100_000
	now := time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)
	pub := &offerCounter{}
	d := New(Config{}, pub, slog.New(slog.NewTextHandler(io.Discard, nil)), func() time.Time { return now })
	d.Reservations = res
	ctx := context.Background()
	r := rand.New(rand.NewPCG(9, 9))
	const lat0, lng0 = 37.7749, -122.4194
	latSpan := 30000 / 111195.0
	lngSpan := latSpan / math.Cos(lat0*math.Pi/180)
	point := func() ride.LatLng {
		return ride.LatLng{Lat: lat0 + (r.Float64()-0.5)*latSpan, Lng: lng0 + (r.Float64()-0.5)*lngSpan}
	}
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	for i := range drivers {
		id := fmt.Sprintf("driver-%06d", i)
		p := point()
		e, err := ev.New(ev.TypeDriverAvailability, id, now, ride.DriverAvailability{DriverID: id, Available: true})
		must(err)
		must(d.HandleDriverEvent(ctx, e))
		e, err = ev.New(ev.TypeDriverLocation, id, now, ride.DriverLocation{DriverID: id, Lat: p.Lat, Lng: p.Lng})
		must(err)
		must(d.HandleDriverEvent(ctx, e))
	}
	// Requests are encoded up front: encoding is the producer's work.
	const pool = 4096
	requests := make([]ev.Envelope, pool)
	for i := range requests {
		id := fmt.Sprintf("trip-%d", i)
		tr := ride.Trip{TripID: id, State: ride.StateRequested, Version: 1, RiderID: "r", Pickup: point(), RequestedAt: now}
		e, err := ev.New(ev.TypeTripUpdated, id, now, ride.TripUpdated{Trip: tr})
		must(err)
		requests[i] = e
	}
	h := hdrhistogram.New(1, int64(time.Second), 3)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := requests[i%pool]
		t0 := time.Now()
		outs, err := d.HandleTripEvent(ctx, req)
		must(err)
		must(pub.Publish(ctx, outs...))
		_ = h.RecordValue(int64(time.Since(t0)))

		// Untimed: the rider cancels, which frees the driver, so every
		// iteration sees the same supply.
		b.StopTimer()
		var cmd ride.TripCommand
		must(pub.last.Env.DecodePayload(&cmd))
		if pub.last.Env.Type != ev.TypeDispatchOffer || cmd.TripID != req.Key {
			b.Fatalf("iteration %d: no offer for %s (last %s %+v)", i, req.Key, pub.last.Env.Type, cmd)
		}
		o := &ride.Offer{OfferID: cmd.OfferID, DriverID: cmd.DriverID}
		e, err := ev.New(ev.TypeTripUpdated, req.Key, now, ride.TripUpdated{EndedOffer: o,
			Trip: ride.Trip{TripID: req.Key, State: ride.StateCancelled, Version: 3, Offered: []string{cmd.DriverID}}})
		must(err)
		_, err = d.HandleTripEvent(ctx, e)
		must(err)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(h.ValueAtQuantile(50))/1e3, "p50-µs")
	b.ReportMetric(float64(h.ValueAtQuantile(99))/1e3, "p99-µs")
	b.ReportMetric(float64(h.Max())/1e3, "max-µs")
}
