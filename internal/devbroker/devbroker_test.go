package devbroker

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/hexride/hexride/events"
	"github.com/hexride/hexride/events/kafka"
	"github.com/hexride/hexride/ride"
)

// TestEmbeddedBrokerDropsExpiredEvents: the embedded broker keeps events in
// memory, so with a retention it must let them go, or a demo left running
// grows by every ping it ever took.
func TestEmbeddedBrokerDropsExpiredEvents(t *testing.T) {
	b, err := StartLocal(0, 1, "", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := kafka.NewProducer(b.Addrs(), 0)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	publish := func(id string) {
		t.Helper()
		e, err := events.NewWithID(id, events.TypeDriverAvailability, "d-1", time.Now(), ride.DriverAvailability{DriverID: "d-1", Available: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Publish(ctx, events.Outgoing{Topic: events.TopicDriverEvents, Env: e}); err != nil {
			t.Fatal(err)
		}
	}
	publish("old")
	if info := b.c.PartitionInfo(events.TopicDriverEvents, 0); info.HighWatermark != 1 || info.LogStartOffset != 0 || info.NumBytes == 0 {
		t.Fatalf("after one event: %+v", info)
	}
	for {
		info := b.c.PartitionInfo(events.TopicDriverEvents, 0)
		if info.LogStartOffset == 1 && info.NumBytes == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the expired event was kept: %+v", info)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A consumer starting now reads what came after, from where the log starts.
	publish("new")
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: b.Addrs(), Topic: events.TopicDriverEvents, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(kafkago.FirstOffset); err != nil {
		t.Fatal(err)
	}
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := events.Decode(m.Value); err != nil || e.ID != "new" || m.Offset != 1 {
		t.Fatalf("first event after expiry: offset %d, %+v, %v", m.Offset, e, err)
	}
}

// TestEmbeddedBrokerFreesExpiredSegments: expired events give their memory
// back while the partition keeps taking new ones. The log is kept on disk
// here so that what the broker holds can be measured; without a data dir
// the same segments live in memory.
func TestEmbeddedBrokerFreesExpiredSegments(t *testing.T) {
	dir := t.TempDir()
	b, err := StartLocal(0, 1, dir, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := kafka.NewProducer(b.Addrs(), 0)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	batch := func(prefix string, n int) {
		t.Helper()
		outs := make([]events.Outgoing, n)
		for i := range outs {
			e, err := events.NewWithID(fmt.Sprintf("%s-%d", prefix, i), events.TypeDriverAvailability, "d-1", time.Now(), ride.DriverAvailability{DriverID: "d-1", Available: true})
			if err != nil {
				t.Fatal(err)
			}
			outs[i] = events.Outgoing{Topic: events.TopicDriverEvents, Env: e}
		}
		if err := p.Publish(ctx, outs...); err != nil {
			t.Fatal(err)
		}
	}
	held := func() int64 {
		t.Helper()
		var n int64
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.Contains(path, events.TopicDriverEvents) {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// About 4 MiB of events that will expire.
	for i := 0; held() < 4<<20; i++ {
		batch(fmt.Sprintf("old%d", i), 2000)
	}
	before := held()
	for i := 0; ; i++ {
		batch(fmt.Sprintf("new%d", i), 1)
		if n := held(); n < before/2 {
			t.Logf("log on disk: %d bytes with the old events, %d after they expired", before, n)
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("log on disk: %d bytes with the old events, still %d after they expired", before, held())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
