package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/events/kafka"
	"github.com/hexride/hexride/ride"
)

// TestPoisonEventsAreDeadLetteredAndDoNotBlock writes events no consumer can
// use onto every consumed topic, then checks each lands in dead.letters with
// a reason and its source, and that a ride behind them still completes.
func TestPoisonEventsAreDeadLetteredAndDoNotBlock(t *testing.T) {
	e := startPlatform(t, nil)
	ctx := context.Background()
	prod := kafka.NewProducer(e.brokers, time.Millisecond)
	defer prod.Close()

	newer := func(typ, key string) []byte {
		b, _ := json.Marshal(map[string]any{"id": "newer-" + key, "type": typ, "v": ev.SchemaVersion + 1, "at": time.Now(), "key": key, "payload": map[string]any{}})
		return b
	}
	unknown := func(key string) []byte {
		b, _ := json.Marshal(map[string]any{"id": "unknown-" + key, "type": "teleport", "v": 1, "at": time.Now(), "key": key, "payload": map[string]any{}})
		return b
	}
	illegal, err := ev.NewWithID("illegal-1", ev.TypeTripComplete, "t-none", time.Now(), ride.TripCommand{TripID: "t-none", UserID: "d-x"})
	if err != nil {
		t.Fatal(err)
	}
	illegalBytes, _ := json.Marshal(illegal)
	poison := []struct {
		topic, key string
		value      []byte
		reason     string
	}{
		{ev.TopicTripCommands, "p1", []byte("\x00\x01 garbage"), "decode envelope"},
		{ev.TopicTripCommands, "p2", unknown("p2"), "unknown trip command type"},
		{ev.TopicTripCommands, "p3", newer(ev.TypeTripCancel, "p3"), "newer"},
		{ev.TopicTripCommands, "t-none", illegalBytes, "does not exist"},
		{ev.TopicDriverEvents, "p5", []byte("{"), "decode envelope"},
		{ev.TopicDriverEvents, "p6", unknown("p6"), "unknown driver event type"},
		{ev.TopicTripEvents, "p7", newer(ev.TypeTripUpdated, "p7"), "newer"},
		{ev.TopicUserPushes, "p8", unknown("p8"), "unknown push event type"},
	}
	for _, p := range poison {
		if err := prod.PublishRaw(ctx, p.topic, []byte(p.key), p.value); err != nil {
			t.Fatal(err)
		}
	}

	// A ride behind the poison completes.
	acceptedRide(t, e, e)

	// Every poison event is in dead.letters with its source and a reason.
	// driver.events is consumed by three groups (dispatcher, tripstate and
	// the gateway's live map) and trip.events by two (dispatcher and live
	// map): each dead-letters the poison it cannot read.
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: e.brokers, Topic: ev.TopicDeadLetters, GroupID: "test-dl", StartOffset: kafkago.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	want := map[string]int{}
	for _, p := range poison {
		n := map[string]int{ev.TopicDriverEvents: 3, ev.TopicTripEvents: 2}[p.topic]
		want[p.topic+"/"+p.key] = max(n, 1)
	}
	got := map[string]int{}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	need := 0
	for _, n := range want {
		need += n
	}
	for total := 0; total < need; total++ {
		m, err := r.FetchMessage(rctx)
		if err != nil {
			t.Fatalf("dead letters so far %v, want %v: %v", got, want, err)
		}
		env, err := ev.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		var dl ev.DeadLetter
		if err := env.DecodePayload(&dl); err != nil {
			t.Fatal(err)
		}
		k := dl.Topic + "/" + dl.Key
		got[k]++
		var reason string
		for _, p := range poison {
			if p.topic+"/"+p.key == k {
				reason = p.reason
			}
		}
		if reason == "" || !strings.Contains(dl.Reason, reason) || dl.Group == "" || dl.Offset < 0 {
			t.Fatalf("dead letter %+v: want a reason containing %q", dl, reason)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dead letters %v, want %v", got, want)
	}
}
