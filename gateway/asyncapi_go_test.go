package gateway

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hexride/hexride/events"
	"github.com/hexride/hexride/livemap"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// The messages the code really produces match the document's schemas.
func TestAsyncAPIDescribesGoMessages(t *testing.T) {
	doc := loadAPIDoc(t)
	ws := doc.wsChannel(t)
	kafka := map[string]apiChannel{}
	for _, c := range doc.channels(t) {
		kafka[c.address] = c
	}

	at := time.Date(2026, 11, 22, 21, 0, 3, 500_000_000, time.UTC)
	heading := 271.5
	speed := 9.0
	pickup := ride.LatLng{Lat: 37.7749, Lng: -122.4194}
	dropoff := ride.LatLng{Lat: 37.8044, Lng: -122.2712}
	offer := ride.Offer{OfferID: "o-0123456789abcdef", DriverID: "d-42", PickupDistanceM: 412.5, ExpiresAt: at.Add(15 * time.Second)}
	offered := ride.Trip{TripID: "t-1", State: ride.StateOffered, Version: 2, RiderID: "r-1", Pickup: pickup, Dropoff: dropoff,
		Offer: &offer, Offered: []string{"d-42"}, RequestedAt: at.Add(-time.Second), UpdatedAt: at}
	accepted := offered
	accepted.State, accepted.Version, accepted.DriverID, accepted.Offer = ride.StateAccepted, 3, "d-42", nil
	cancelled := accepted
	cancelled.State, cancelled.Version, cancelled.Reason = ride.StateCancelled, 4, "cancelled_by_rider: changed my mind"
	requested := ride.Trip{TripID: "t-2", State: ride.StateRequested, Version: 1, RiderID: "r-2", Pickup: pickup, Dropoff: dropoff,
		RequestedAt: at, UpdatedAt: at}
	tripMsg := protocol.NewTripMessage(accepted)

	withSeq := func(v any) any {
		m := normalize(t, v).(map[string]any)
		m["seq"] = float64(17)
		return m
	}
	wsCases := []struct {
		name string
		typ  string
		msg  any
	}{
		{"offer", protocol.PushOffer, withSeq(protocol.NewOfferMessage(offered, offer))},
		{"trip requested", protocol.PushTrip, withSeq(protocol.NewTripMessage(requested))},
		{"trip accepted", protocol.PushTrip, withSeq(tripMsg)},
		{"trip cancelled", protocol.PushTrip, withSeq(protocol.NewTripMessage(cancelled))},
		{"driver.location with heading", protocol.PushDriverLocation, withSeq(protocol.DriverLocationMessage{Type: protocol.PushDriverLocation,
			TripID: "t-1", Lat: 37.775, Lng: -122.42, Heading: &heading, At: events.FormatTime(at)})},
		{"driver.location without heading", protocol.PushDriverLocation, withSeq(protocol.DriverLocationMessage{Type: protocol.PushDriverLocation,
			TripID: "t-1", Lat: 37.775, Lng: -122.42, At: events.FormatTime(at)})},
		{"resync without trip", protocol.PushResync, withSeq(protocol.ResyncMessage{Type: protocol.PushResync})},
		{"resync with trip", protocol.PushResync, withSeq(protocol.ResyncMessage{Type: protocol.PushResync, Trip: &tripMsg})},
		{"ack", protocol.MsgAck, normalize(t, protocol.Answer{Type: protocol.MsgAck, ID: "1"})},
		{"ack with trip_id", protocol.MsgAck, normalize(t, protocol.Answer{Type: protocol.MsgAck, ID: "r1", TripID: "t-0123456789abcdef0123"})},
		{"error with id", protocol.MsgError, normalize(t, protocol.Answer{Type: protocol.MsgError, ID: "7", Code: protocol.CodeConflict, Message: "offer o-1 expired"})},
		{"error without id", protocol.MsgError, normalize(t, protocol.Answer{Type: protocol.MsgError, Code: protocol.CodeBadRequest, Message: "malformed JSON"})},
	}
	wsCases = append(wsCases, liveMapCases(t, at, offer, offered, accepted)...)
	for _, tc := range wsCases {
		t.Run("ws "+tc.name, func(t *testing.T) {
			m := ws.message(t, tc.typ)
			for _, e := range doc.validate(t, m.obj["payload"], tc.msg, tc.typ) {
				t.Errorf("%s: the %s the code sends does not match %s: %s", apiDocPath, tc.name, m.ref, e)
			}
		})
	}

	mustJSON := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	local := time.FixedZone("UTC+5:30", 5*3600+1800)
	kafkaCases := []struct {
		topic, typ, key string
		payload         any
	}{
		{events.TopicDriverEvents, events.TypeDriverLocation, "d-42", ride.DriverLocation{DriverID: "d-42", Lat: 1, Lng: 2}},
		{events.TopicDriverEvents, events.TypeDriverLocation, "d-42", ride.DriverLocation{DriverID: "d-42", Lat: 1, Lng: 2,
			Heading: &heading, SpeedMPS: &speed, At: "2026-11-22T21:00:00.120Z"}},
		{events.TopicDriverEvents, events.TypeDriverAvailability, "d-42", ride.DriverAvailability{DriverID: "d-42"}},
		{events.TopicTripCommands, events.TypeRideRequest, "t-1", ride.TripCommand{TripID: "t-1", UserID: "r-1", Role: protocol.RoleRider, Pickup: &pickup, Dropoff: &dropoff}},
		{events.TopicTripCommands, events.TypeOfferAccept, "t-1", ride.TripCommand{TripID: "t-1", UserID: "d-42", Role: protocol.RoleDriver, OfferID: "o-1"}},
		{events.TopicTripCommands, events.TypeOfferDecline, "t-1", ride.TripCommand{TripID: "t-1", UserID: "d-42", Role: protocol.RoleDriver, OfferID: "o-1"}},
		{events.TopicTripCommands, events.TypeTripArrive, "t-1", ride.TripCommand{TripID: "t-1", UserID: "d-42", Role: protocol.RoleDriver}},
		{events.TopicTripCommands, events.TypeTripStart, "t-1", ride.TripCommand{TripID: "t-1", UserID: "d-42", Role: protocol.RoleDriver}},
		{events.TopicTripCommands, events.TypeTripComplete, "t-1", ride.TripCommand{TripID: "t-1", UserID: "d-42", Role: protocol.RoleDriver}},
		{events.TopicTripCommands, events.TypeTripCancel, "t-1", ride.TripCommand{TripID: "t-1", UserID: "r-1", Role: protocol.RoleRider}},
		{events.TopicTripCommands, events.TypeTripCancel, "t-1", ride.TripCommand{TripID: "t-1", UserID: "d-42", Role: protocol.RoleDriver, Reason: "flat tyre"}},
		{events.TopicTripCommands, events.TypeDispatchOffer, "t-1", ride.TripCommand{TripID: "t-1", OfferID: "o-1", DriverID: "d-42",
			PickupDistanceM: 412.5, ExpiresAt: at.In(local)}},
		{events.TopicTripCommands, events.TypeDispatchOffer, "t-1", ride.TripCommand{TripID: "t-1", OfferID: "o-1", DriverID: "d-42", ExpiresAt: at}},
		{events.TopicTripCommands, events.TypeDispatchExpire, "t-1", ride.TripCommand{TripID: "t-1", OfferID: "o-1"}},
		{events.TopicTripCommands, events.TypeDispatchNoDrivers, "t-1", ride.TripCommand{TripID: "t-1"}},
		{events.TopicTripCommands, events.TypeTripDeadline, "t-1", ride.TripCommand{TripID: "t-1"}},
		{events.TopicTripEvents, events.TypeTripUpdated, "t-2", ride.TripUpdated{Trip: requested, Cause: events.TypeRideRequest}},
		{events.TopicTripEvents, events.TypeTripUpdated, "t-1", ride.TripUpdated{Trip: offered, Cause: events.TypeDispatchOffer}},
		{events.TopicTripEvents, events.TypeTripUpdated, "t-1", ride.TripUpdated{Trip: accepted, Cause: events.TypeOfferAccept, EndedOffer: &offer}},
		{events.TopicUserPushes, events.TypePush, "d-42", protocol.Push{UserID: "d-42", Message: mustJSON(protocol.NewOfferMessage(offered, offer))}},
		{events.TopicUserPushes, events.TypePush, "r-1", protocol.Push{UserID: "r-1", Message: mustJSON(tripMsg)}},
		{events.TopicUserPushes, events.TypePush, "r-1", protocol.Push{UserID: "r-1", Message: mustJSON(protocol.DriverLocationMessage{
			Type: protocol.PushDriverLocation, TripID: "t-1", Lat: 1, Lng: 2, At: events.FormatTime(at)})}},
		{events.TopicUserPushes, events.TypePush, "driver:d-42", protocol.Push{UserID: "d-42", Role: protocol.RoleDriver, Message: mustJSON(protocol.NewOfferMessage(offered, offer))}},
		{events.TopicUserPushes, events.TypePush, "rider:r-1", protocol.Push{UserID: "r-1", Role: protocol.RoleRider, Message: mustJSON(tripMsg)}},
		{events.TopicDeadLetters, events.TypeDeadLetter, "t-1", events.DeadLetter{Reason: "permanent: decode envelope: missing id",
			Group: "tripstate", Topic: events.TopicTripCommands, Partition: 3, Offset: 1042, Key: "t-1", Value: "{}"}},
	}
	for i, tc := range kafkaCases {
		t.Run(fmt.Sprintf("%s %s %d", tc.topic, tc.typ, i), func(t *testing.T) {
			c, ok := kafka[tc.topic]
			if !ok {
				t.Fatalf("%s: no channel with address %q", apiDocPath, tc.topic)
			}
			m := c.message(t, tc.typ)
			env, err := events.New(tc.typ, tc.key, at.In(local), tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			v := normalize(t, env)
			for _, e := range doc.validate(t, m.obj["payload"], v, tc.typ) {
				t.Errorf("%s: the %s event the code produces does not match %s: %s", apiDocPath, tc.typ, m.ref, e)
			}
		})
	}
}

// liveMapCases are frames and details a real aggregator produced from
// events, so the document is checked against what the code writes by hand.
func liveMapCases(t *testing.T, at time.Time, offer ride.Offer, offered, accepted ride.Trip) []struct {
	name string
	typ  string
	msg  any
} {
	t.Helper()
	agg, err := livemap.New(livemap.Config{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply := func(typ, key string, when time.Time, payload any) {
		t.Helper()
		env, err := events.New(typ, key, when, payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := agg.Apply(env); err != nil {
			t.Fatalf("apply %s: %v", typ, err)
		}
	}
	speed := 8.5
	mustApply(events.TypeDriverAvailability, "d-42", at, ride.DriverAvailability{DriverID: "d-42", Available: true})
	mustApply(events.TypeDriverLocation, "d-42", at, ride.DriverLocation{DriverID: "d-42", Lat: 37.775, Lng: -122.42, SpeedMPS: &speed})
	mustApply(events.TypeDriverLocation, "d-7", at, ride.DriverLocation{DriverID: "d-7", Lat: 37.78, Lng: -122.41})
	mustApply(events.TypeTripUpdated, "t-1", at, ride.TripUpdated{Trip: offered, Cause: events.TypeDispatchOffer})
	snap := agg.Tick(at, true).Snapshot
	mustApply(events.TypeDriverLocation, "d-7", at.Add(time.Second), ride.DriverLocation{DriverID: "d-7", Lat: 37.7801, Lng: -122.4102})
	mustApply(events.TypeTripUpdated, "t-1", at.Add(time.Second), ride.TripUpdated{Trip: accepted, Cause: events.TypeOfferAccept, EndedOffer: &offer})
	delta := agg.Tick(at.Add(time.Second), false).Delta
	var sm livemap.SnapshotMessage
	if err := decodeStrict(snap, &sm); err != nil {
		t.Fatalf("snapshot does not fit livemap.SnapshotMessage: %v\n%s", err, snap)
	}
	var dm livemap.DeltaMessage
	if err := decodeStrict(delta, &dm); err != nil {
		t.Fatalf("delta does not fit livemap.DeltaMessage: %v\n%s", err, delta)
	}
	if len(sm.Drivers) != 8 || len(sm.Trips) != 7 || len(dm.Moved) != 3 || len(dm.Drivers) != 4 {
		t.Fatalf("frames do not show two drivers and a trip, then d-7 moving and d-42 changing state:\n%s\n%s", snap, delta)
	}
	driver, err := agg.Inspect(livemap.KindDriver, sm.Drivers[0])
	if err != nil {
		t.Fatal(err)
	}
	trip, err := agg.Inspect(livemap.KindTrip, sm.Trips[0])
	if err != nil {
		t.Fatal(err)
	}
	trip.ID = "i7"
	return []struct {
		name string
		typ  string
		msg  any
	}{
		{"map.snapshot", protocol.MsgMapSnapshot, normalize(t, json.RawMessage(snap))},
		{"map.delta", protocol.MsgMapDelta, normalize(t, json.RawMessage(delta))},
		{"map.detail driver", protocol.MsgMapDetail, normalize(t, driver)},
		{"map.detail trip", protocol.MsgMapDetail, normalize(t, trip)},
	}
}
