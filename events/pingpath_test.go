package events

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPingPath measures what the Kafka part of a ping costs the
// process: pings sent with Producer.Send to the embedded broker and read
// back by three Bulk consumer groups (as the dispatcher, tripstate and the
// live map read driver.events), each decoding every ping. It reports
// cpu-µs/ping (user + system, broker included) against one ping per
// record, as the platform sends them, and against fifty pings per record,
// the shape docs/loadtest.md names as the next step: the same work for the
// pings, one record's costs for fifty.
//
//	go test ./events -run XXX -bench PingPath -benchtime 200000x
func BenchmarkPingPath(b *testing.B) {
	for _, perRecord := range []int{1, 50} {
		b.Run(fmt.Sprintf("%d-per-record", perRecord), func(b *testing.B) {
			benchPingPath(b, perRecord)
		})
	}
}

func benchPingPath(b *testing.B, perRecord int) {
	brokers := startBroker(b, 4, TopicDriverEvents)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const groups, drivers = 3, 2000
	var handled atomic.Int64
	decode := func(e Envelope) error {
		if perRecord == 1 {
			var loc DriverLocation
			if err := e.DecodePayload(&loc); err != nil {
				return err
			}
			handled.Add(1)
			return nil
		}
		var locs []DriverLocation
		if err := e.DecodePayload(&locs); err != nil {
			return err
		}
		handled.Add(int64(len(locs)))
		return nil
	}
	done := make(chan error, groups)
	for g := range groups {
		go func() {
			done <- Consume(ctx, ConsumerConfig{Brokers: brokers, Group: fmt.Sprintf("bench-%d-%d", perRecord, g),
				Topic: TopicDriverEvents, Bulk: true}, func(_ context.Context, e Envelope) error { return decode(e) })
		}()
	}
	p := NewProducerWith(ProducerConfig{Brokers: brokers, PingLinger: 50 * time.Millisecond})
	defer p.Close()
	loc := func(i int) DriverLocation {
		return DriverLocation{DriverID: fmt.Sprintf("d-%d", i%drivers), Lat: 37.7749 + float64(i%100)/1e4, Lng: -122.4194, At: "2026-12-05T08:00:00.000Z"}
	}
	record := func(i int) Outgoing {
		var e Envelope
		var err error
		if perRecord == 1 {
			l := loc(i)
			e, err = New(TypeDriverLocation, l.DriverID, time.Now(), l)
		} else {
			locs := make([]DriverLocation, perRecord)
			for j := range locs {
				locs[j] = loc(i + j)
			}
			e, err = New("driver.locations", fmt.Sprintf("cell-%d", i%64), time.Now(), locs)
		}
		if err != nil {
			b.Fatal(err)
		}
		return Outgoing{Topic: TopicDriverEvents, Env: e}
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
	// The groups join and fetch a first record before anything is timed.
	if err := p.Send(ctx, record(0)); err != nil {
		b.Fatal(err)
	}
	waitFor(int64(groups * perRecord))
	start := int64(groups * perRecord)
	records := (b.N + perRecord - 1) / perRecord
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := range records {
		if err := p.Send(ctx, record(i*perRecord)); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(start + int64(groups*records*perRecord))
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(records*perRecord), "cpu-µs/ping")
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
