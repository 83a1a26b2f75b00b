// Package audittest gives the audit's tests (and the CLI's) a log worth
// reading: an embedded broker, a real redis-server, and tripstate applying
// the commands of a completed ride and a cancelled one, as the gateway and
// the dispatcher would have sent them.
package audittest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	kafkago "github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/events/kafka"
	"github.com/hexride/hexride/internal/devbroker"
	"github.com/hexride/hexride/internal/platform"
	"github.com/hexride/hexride/internal/redistest"
	"github.com/hexride/hexride/ride"
	"github.com/hexride/hexride/trip"
)

// Platform is tripstate on an embedded broker and a real redis-server,
// with two trips done.
type Platform struct {
	Brokers []string
	// Live is the store tripstate wrote.
	Live     *redistest.Server
	LiveRDB  *redis.Client
	Producer *kafka.Producer
	// Completed went REQUESTED→OFFERED→ACCEPTED→ARRIVED→IN_PROGRESS→
	// COMPLETED, then got a trip.arrive too many, which was dead-lettered.
	// Cancelled was cancelled by its rider while OFFERED.
	Completed, Cancelled string
	Rider, Driver        string
	// Sent are the commands published, in order.
	Sent []ev.Envelope
}

// Start runs the platform and the two trips; everything stops when the
// test ends.
func Start(tb testing.TB) *Platform {
	tb.Helper()
	broker, err := devbroker.StartLocal(0, 4, "", 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(broker.Close)
	live := redistest.Start(tb)
	p := &Platform{Brokers: broker.Addrs(), Live: live, LiveRDB: live.Client(tb), Producer: kafka.NewProducer(broker.Addrs(), 0),
		Completed: "trip-done-1", Cancelled: "trip-cancelled-1", Rider: "r-1", Driver: "d-1"}
	tb.Cleanup(func() { _ = p.Producer.Close() })

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := trip.NewStore(p.LiveRDB)
	svc := trip.NewService(store, p.Producer, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return svc.Run(ctx) })
		g.Go(func() error { return platform.Serve(ctx, p.Brokers, p.Producer, log, platform.Parts{Trips: svc}) })
		done <- g.Wait()
	}()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("tripstate stopped with %v", err)
		}
	})

	pickup, dropoff := &ride.LatLng{Lat: 37.7749, Lng: -122.4194}, &ride.LatLng{Lat: 37.7849, Lng: -122.4094}
	rider := ride.TripCommand{UserID: p.Rider, Role: "rider"}
	driver := ride.TripCommand{UserID: p.Driver, Role: "driver"}
	offer := func(id string) ride.TripCommand {
		return ride.TripCommand{OfferID: id, DriverID: p.Driver, PickupDistanceM: 420, ExpiresAt: time.Now().Add(time.Minute)}
	}
	request := rider
	request.Pickup, request.Dropoff = pickup, dropoff
	accept := driver
	accept.OfferID = "o-1"
	cancelCmd := rider
	cancelCmd.Reason = "changed my mind"

	steps := []struct {
		tripID, typ string
		cmd         ride.TripCommand
		version     int64 // the trip's version once applied
	}{
		{p.Completed, ev.TypeRideRequest, request, 1},
		{p.Completed, ev.TypeDispatchOffer, offer("o-1"), 2},
		{p.Completed, ev.TypeOfferAccept, accept, 3},
		{p.Completed, ev.TypeTripArrive, driver, 4},
		{p.Completed, ev.TypeTripStart, driver, 5},
		{p.Completed, ev.TypeTripComplete, driver, 6},
		{p.Cancelled, ev.TypeRideRequest, request, 1},
		{p.Cancelled, ev.TypeDispatchOffer, offer("o-2"), 2},
		{p.Cancelled, ev.TypeTripCancel, cancelCmd, 3},
	}
	for _, s := range steps {
		s.cmd.TripID = s.tripID
		p.Publish(tb, s.typ, s.cmd)
		WaitFor(tb, s.tripID+" "+s.typ+" applied", func() bool {
			t, ok, err := store.Trip(context.Background(), s.tripID)
			if err != nil {
				tb.Fatal(err)
			}
			return ok && t.Version == s.version
		})
	}
	// Tripstate refuses this one and dead-letters it, keyed by the trip.
	again := driver
	again.TripID = p.Completed
	p.Publish(tb, ev.TypeTripArrive, again)
	WaitFor(tb, "the dead letter", func() bool { return p.End(tb, ev.TopicDeadLetters) > 0 })
	return p
}

// Publish puts one command on trip.commands.
func (p *Platform) Publish(tb testing.TB, typ string, cmd ride.TripCommand) {
	tb.Helper()
	env, err := ev.New(typ, cmd.TripID, time.Now(), cmd)
	if err != nil {
		tb.Fatal(err)
	}
	p.Resend(tb, env)
	p.Sent = append(p.Sent, env)
}

// Resend puts env on trip.commands as it is: sent again, it is what an
// at-least-once redelivery looks like to tripstate.
func (p *Platform) Resend(tb testing.TB, env ev.Envelope) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Producer.Publish(ctx, ev.Outgoing{Topic: ev.TopicTripCommands, Env: env}); err != nil {
		tb.Fatal(err)
	}
}

// End is how many records topic has ever had, over all its partitions.
func (p *Platform) End(tb testing.TB, topic string) int64 {
	tb.Helper()
	ends, err := EndOffsets(p.Brokers)
	if err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, e := range ends[topic] {
		n += e
	}
	return n
}

// WaitFor polls cond until it holds, failing the test after 15 s.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within 15s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// EndOffsets reads the end offset of every partition of every platform
// topic, with a client of its own: it is how a test sees that a reader of
// the log wrote nothing to it.
func EndOffsets(brokers []string) (map[string][]int64, error) {
	const partitions = 4 // as Start creates them
	c := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 5 * time.Second}
	req := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}}
	for _, t := range ev.Topics {
		for p := range partitions {
			req.Topics[t] = append(req.Topics[t], kafkago.LastOffsetOf(p))
		}
	}
	res, err := c.ListOffsets(context.Background(), req)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	out := map[string][]int64{}
	for t, pos := range res.Topics {
		out[t] = make([]int64, partitions)
		for _, po := range pos {
			if po.Error != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %w", t, po.Partition, po.Error)
			}
			out[t][po.Partition] = po.LastOffset
		}
	}
	return out, nil
}
