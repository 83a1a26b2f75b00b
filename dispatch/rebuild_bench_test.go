package dispatch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/events/kafka"
	"github.com/hexride/hexride/internal/devbroker"
	"github.com/hexride/hexride/internal/redistest"
	"github.com/hexride/hexride/ride"
	"github.com/hexride/hexride/supply"
)

// BenchmarkRebuild is what a dispatcher restarted (or taking over) with
// 100,000 drivers known costs before it decides again: reading the
// availability record of 100,000 drivers from a real redis-server, then
// the 375,000 pings those drivers send in 15 s (every 4 s each: the part of
// driver.events the rebuild reads) from the embedded broker, into the
// supply index. It reports seconds per rebuild.
func BenchmarkRebuild(b *testing.B) {
	const drivers, pings = 100_000, 375_000
	ctx := context.Background()
	broker, err := devbroker.StartLocal(0, 4, "", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer broker.Close()
	rdb := redistest.Start(b).Client(b)
	rec := supply.Record{RDB: rdb}
	now := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < drivers; i += 16 {
				if err := rec.Set(ctx, fmt.Sprintf("d-%d", i), now, true); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	p := kafka.NewProducerWith(kafka.ProducerConfig{Brokers: broker.Addrs(), PingLinger: 50 * time.Millisecond})
	r := rand.New(rand.NewPCG(1, 2))
	for i := range pings {
		id := fmt.Sprintf("d-%d", i%drivers)
		env, err := ev.New(ev.TypeDriverLocation, id, time.Now(), ride.DriverLocation{DriverID: id,
			Lat: 37.6 + r.Float64()*0.27, Lng: -122.6 + r.Float64()*0.34})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Send(ctx, ev.Outgoing{Topic: ev.TopicDriverEvents, Env: env}); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Close(); err != nil { // flushes
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.ResetTimer()
	for b.Loop() {
		// StaleAfter covers every ping written above, however long the
		// writing took: the benchmark reads all of them each time.
		d := New(Config{StaleAfter: 10 * time.Minute}, &offerCounter{}, log, nil)
		d.Supply = rec
		d.rebuilt = false // as PrepareSupply will make it, before the loop below looks
		r := ev.NewRouter(kafka.Subscriber{Brokers: broker.Addrs(), Logger: log}, &offerCounter{}, log)
		r.Add(ev.Route{Reader: "dispatcher-supply", Topic: ev.TopicDriverEvents, Handler: d.HandleDriverEvents,
			Batch: true, Bulk: true, Prepare: d.PrepareSupply, From: d.SupplyFrom, CaughtUp: d.SupplyCaughtUp})
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		for d.Ready() != nil {
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if n := d.index.Len(); n != drivers {
			b.Fatalf("%d drivers indexed, want %d", n, drivers)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/rebuild")
}
