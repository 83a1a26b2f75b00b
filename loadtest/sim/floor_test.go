package sim

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The floor benchmarks measure what one location frame costs the machine
// before either side does any work with it: one phone-sized text frame
// written on one socket of many and read on the other end over loopback,
// both ends in this process. They report CPU time per frame (user +
// system, both ends together) as cpu-µs/frame, which bounds the pings per
// second one machine can carry with the load generator on it
// (docs/loadtest.md, "The floor").
//
//	go test ./loadtest/sim -run XXX -bench Floor -benchtime 200000x

// floorFrame is the size of a simulated driver's location frame.
var floorFrame = []byte(`{"type":"location","lat":37.774912,"lng":-122.419415,"heading":90.0,"speed":8.91,"ts":"2026-12-04T20:43:24.123Z","id":"f0c3a1b2"}`)

const floorSockets = 2000

func BenchmarkFloorTCP(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var got atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					got.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	writers := make([]func() error, floorSockets)
	for i := range writers {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		writers[i] = func() error { _, err := c.Write(floorFrame); return err }
	}
	runFloor(b, writers, func() int64 { return got.Load() / int64(len(floorFrame)) })
}

func BenchmarkFloorWebSocket(b *testing.B) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			_, rd, err := c.Reader(context.Background())
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, rd); err != nil {
				return
			}
			got.Add(1)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	writers := make([]func() error, floorSockets)
	for i := range writers {
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseNow()
		writers[i] = func() error { return c.Write(ctx, websocket.MessageText, floorFrame) }
	}
	runFloor(b, writers, got.Load)
}

// runFloor sends b.N frames two ways. flat-out: two goroutines write
// round-robin over the sockets as fast as they can, so readers often find
// the next frame already there. 50000/s: every socket has a goroutine of
// its own that writes on a ticker, as a simulated phone does, together
// 50,000 frames a second, so nearly every frame wakes a parked reader.
// Each waits until the far end has read every frame and reports the
// process's CPU time per frame.
func runFloor(b *testing.B, writers []func() error, received func() int64) {
	b.Run("flat-out", func(b *testing.B) {
		floorRun(b, received, func() {
			var wg sync.WaitGroup
			const senders = 2
			for s := 0; s < senders; s++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := s; i < b.N; i += senders {
						if err := writers[i%len(writers)](); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	})
	b.Run("50000/s", func(b *testing.B) {
		const rate = 50000
		every := time.Duration(len(writers)) * time.Second / rate
		floorRun(b, received, func() {
			var wg sync.WaitGroup
			var sent atomic.Int64
			for i, write := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(time.Duration(i) * every / time.Duration(len(writers)))
					t := time.NewTicker(every)
					defer t.Stop()
					for range t.C {
						if sent.Add(1) > int64(b.N) {
							return
						}
						if err := write(); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	})
}

func floorRun(b *testing.B, received func() int64, send func()) {
	start := received()
	before := cpuTime(b)
	b.ResetTimer()
	send()
	deadline := time.Now().Add(30 * time.Second)
	for received()-start < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("far end read %d of %d frames", received()-start, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-before).Microseconds())/float64(b.N), "cpu-µs/frame")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWakeup measures how late an idle reader sees a frame: a
// byte written on a loopback TCP socket every millisecond, its reader
// parked in Read between them, as a Kafka hop's goroutines and the
// broker's are between events. The delay from the write to the read
// returning (the runtime's poller, a thread and a CPU waking up) is
// reported at p50, p99, p99.9 and max in µs. A request→offer crosses a few
// dozen such wake-ups, so this tail is a floor under the platform's tail.
//
//	go test ./loadtest/sim -run XXX -bench Wakeup -benchtime 5000x
func BenchmarkWakeup(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	w, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	r, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	delays := make([]time.Duration, 0, b.N)
	sent := make(chan time.Time, 1)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1)
		for {
			if _, err := r.Read(buf); err != nil {
				done <- err
				return
			}
			delays = append(delays, time.Since(<-sent))
			if len(delays) == cap(delays) {
				done <- nil
				return
			}
		}
	}()
	b.ResetTimer()
	for range b.N {
		time.Sleep(time.Millisecond)
		sent <- time.Now()
		if _, err := w.Write([]byte{1}); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	slices.Sort(delays)
	at := func(q float64) float64 { return float64(delays[int(q*float64(len(delays)-1))].Microseconds()) }
	b.ReportMetric(at(0.5), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
	b.ReportMetric(at(0.999), "p99.9-µs")
	b.ReportMetric(float64(delays[len(delays)-1].Microseconds()), "max-µs")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkStalls spins one thread on the clock for b.N milliseconds and
// reports the gaps in which it did not run: stalls-µs/s (time lost per
// second), the number of gaps over 1 ms, and the longest. With nothing else
// running, every gap is time the machine (on a virtual one, its host) took
// the CPU away; BenchmarkWakeup's tail cannot be better than this.
//
//	go test ./loadtest/sim -run XXX -bench Stalls -benchtime 20000x
func BenchmarkStalls(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	start := time.Now()
	end := start.Add(time.Duration(b.N) * time.Millisecond)
	var lost, longest time.Duration
	over1ms := 0
	prev := start
	for prev.Before(end) {
		now := time.Now()
		if g := now.Sub(prev); g > 100*time.Microsecond {
			lost += g
			longest = max(longest, g)
			if g > time.Millisecond {
				over1ms++
			}
		}
		prev = now
	}
	b.StopTimer()
	b.ReportMetric(float64(lost.Microseconds())/prev.Sub(start).Seconds(), "stalls-µs/s")
	b.ReportMetric(float64(over1ms), "over-1ms")
	b.ReportMetric(float64(longest.Microseconds()), "max-µs")
	b.ReportMetric(0, "ns/op")
}
