package platform

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/events/kafka"
	"github.com/hexride/hexride/ride"
	"github.com/hexride/hexride/trip"
)

// dyingPublisher stands in for a tripstate process that dies at one chosen
// moment: when asked to publish the outputs of the transition into state
// `at`, it kills its instance (cancels its context) either before the
// outputs reach Kafka or just after, and reports failure so the offset is
// never committed.
type dyingPublisher struct {
	inner       *kafka.Producer
	at          string
	afterOutput bool
	kill        context.CancelFunc
	once        sync.Once
	died        chan struct{}
}

// Bulk carries relays, never a trip transition: they go through.
func (p *dyingPublisher) Bulk() ev.Publisher { return p.inner.Bulk() }

func (p *dyingPublisher) Publish(ctx context.Context, outs ...ev.Outgoing) error {
	for _, o := range outs {
		if o.Env.Type != ev.TypeTripUpdated {
			continue
		}
		var u ride.TripUpdated
		if o.Env.DecodePayload(&u) == nil && u.Trip.State == p.at {
			dying := false
			p.once.Do(func() { dying = true })
			if dying {
				if p.afterOutput {
					if err := p.inner.Publish(ctx, outs...); err != nil {
						return err
					}
				}
				p.kill()
				close(p.died)
				return errors.New("killed")
			}
		}
	}
	return p.inner.Publish(ctx, outs...)
}

func TestTripstateCrashBetweenApplyAndCommit(t *testing.T) {
	for _, tc := range []struct {
		name        string
		afterOutput bool
	}{{"before its outputs were published", false}, {"after its outputs were published", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := startPlatform(t, nil, Gateway, Dispatcher)
			rdb := redis.NewClient(&redis.Options{Addr: e.run.Redis.(*redis.Client).Options().Addr})
			defer rdb.Close()
			prod := kafka.NewProducer(e.brokers, time.Millisecond)
			defer prod.Close()
			log := slog.New(slog.NewTextHandler(testWriter{t}, nil))

			ctx1, kill := context.WithCancel(context.Background())
			pub := &dyingPublisher{inner: prod, at: ride.StateAccepted, afterOutput: tc.afterOutput, kill: kill, died: make(chan struct{})}
			first := trip.NewService(trip.NewStore(rdb), pub, log)
			done1 := make(chan error, 1)
			go func() { done1 <- runTripstate(ctx1, first, e.brokers, pub, log) }()

			driver := e.connect("driver", "d-1", "")
			driver.goOnline(37.7755, -122.4180)
			rider := e.connect("rider", "r-1", "")
			tripID := requestRide(t, rider, "req")
			offer := driver.await("offer", 15*time.Second, isType("offer"))
			driver.mustAck("acc", map[string]any{"type": "offer.accept", "offer_id": offer["offer_id"], "trip_id": tripID})
			select {
			case <-pub.died:
			case <-time.After(15 * time.Second):
				t.Fatal("the first tripstate never reached the crash point")
			}
			<-done1

			// A new instance takes over the uncommitted accept.
			ctx2, stop := context.WithCancel(context.Background())
			defer stop()
			second := trip.NewService(trip.NewStore(rdb), prod, log)
			done2 := make(chan error, 1)
			go func() { done2 <- runTripstate(ctx2, second, e.brokers, prod, log) }()
			defer func() { stop(); <-done2 }()

			driver.await("ACCEPTED", 20*time.Second, tripState("ACCEPTED"))
			driver.mustAck("arr", map[string]any{"type": "trip.arrive", "trip_id": tripID})
			rider.await("ARRIVED", 10*time.Second, tripState("ARRIVED"))
			time.Sleep(300 * time.Millisecond) // room for any duplicate to show up

			checkStates(t, "rider", tripPushes(rider, tripID), []string{"REQUESTED", "OFFERED", "ACCEPTED", "ARRIVED"}, 1)
			checkStates(t, "driver", tripPushes(driver, tripID), []string{"OFFERED", "ACCEPTED", "ARRIVED"}, 2)
			checkSeq(t, rider)
			checkSeq(t, driver)
			stored, _, err := trip.NewStore(rdb).Trip(context.Background(), tripID)
			if err != nil || stored.State != ride.StateArrived || stored.Version != 4 || stored.DriverID != "d-1" {
				t.Fatalf("stored trip %+v (%v)", stored, err)
			}
		})
	}
}

// runTripstate runs a tripstate instance as its process would: its sweep,
// and its routes publishing with pub.
func runTripstate(ctx context.Context, svc *trip.Service, brokers []string, pub ev.Publisher, log *slog.Logger) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.Run(ctx) })
	g.Go(func() error { return Serve(ctx, brokers, pub, log, Parts{Trips: svc}) })
	return g.Wait()
}
