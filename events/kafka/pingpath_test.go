package kafka

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hexride/hexride/events"
	"github.com/hexride/hexride/ride"
)

// BenchmarkPingPath measures what the Kafka part of a ping costs the
// process: pings sent with Producer.Send, as the gateway sends them, to the
// embedded broker and read back by three Bulk consumer groups (as the
// dispatcher, tripstate and the live map read driver.events), each decoding
// every ping. It reports cpu-µs/ping (user + system, broker included).
// Run in turn with the build before, which put one ping in a record:
// 21.6-25.7 µs then, 15.2-17.8 now (docs/loadtest.md, item 18).
//
//	go test ./events/kafka -run XXX -bench PingPath -benchtime 200000x
func BenchmarkPingPath(b *testing.B) {
	brokers := startBroker(b, 4, events.TopicDriverEvents)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const groups, drivers = 3, 2000
	var handled atomic.Int64
	done := make(chan error, groups)
	for g := range groups {
		go func() {
			done <- Consume(ctx, ConsumerConfig{Brokers: brokers, Group: fmt.Sprintf("bench-%d", g),
				Topic: events.TopicDriverEvents, Bulk: true}, func(_ context.Context, e events.Envelope) error {
				var loc ride.DriverLocation
				if err := e.DecodePayload(&loc); err != nil {
					return err
				}
				handled.Add(1)
				return nil
			})
		}()
	}
	p := NewProducerWith(ProducerConfig{Brokers: brokers, PingLinger: 50 * time.Millisecond})
	defer p.Close()
	ping := func(i int) events.Outgoing {
		l := ride.DriverLocation{DriverID: fmt.Sprintf("d-%d", i%drivers), Lat: 37.7749 + float64(i%100)/1e4, Lng: -122.4194, At: "2026-12-05T08:00:00.000Z"}
		e, err := events.New(events.TypeDriverLocation, l.DriverID, time.Now(), l)
		if err != nil {
			b.Fatal(err)
		}
		return events.Outgoing{Topic: events.TopicDriverEvents, Env: e}
	}
	waitFor := func(n int64) {
		deadline := time.Now().Add(2 * time.Minute)
		for handled.Load() < n {
			if time.Now().After(deadline) {
				b.Fatalf("handled %d of %d pings", handled.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// The groups join and fetch a first ping before anything is timed.
	if err := p.Send(ctx, ping(0)); err != nil {
		b.Fatal(err)
	}
	waitFor(groups)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := range b.N {
		if err := p.Send(ctx, ping(i)); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(groups + int64(groups*b.N))
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/ping")
	cancel()
	for range groups {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
