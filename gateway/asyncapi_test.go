package gateway

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hexride/hexride/events"
	"github.com/hexride/hexride/livemap"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// (a) Every WebSocket message type of the code is on the /v1/ws channel with
// the right direction, and the channel lists nothing else.
func TestAsyncAPIWebSocketMessages(t *testing.T) {
	doc := loadAPIDoc(t)
	ws := doc.wsChannel(t)

	type want struct {
		direction string
		source    string
	}
	wants := map[string]want{}
	for typ := range protocol.ClientMessageTypes {
		wants[typ] = want{"client", "protocol.ClientMessageTypes"}
	}
	for _, typ := range protocol.ServerMessageTypes {
		if w, dup := wants[typ]; dup {
			t.Errorf("type %q is in both %s and protocol.ServerMessageTypes", typ, w.source)
		}
		wants[typ] = want{"server", "protocol.ServerMessageTypes"}
	}

	// Every message type named in package protocol is in one of the lists,
	// so a name added there is checked against the document too.
	for _, prefix := range []string{"Msg", "Push"} {
		named := constants(t, "../protocol", prefix)
		for _, name := range sortedKeys(named) {
			if _, ok := wants[named[name]]; !ok {
				t.Errorf("protocol.%s = %q is in neither protocol.ClientMessageTypes nor protocol.ServerMessageTypes", name, named[name])
			}
		}
	}

	documented := map[string][]apiMessage{}
	for _, m := range ws.messages {
		documented[m.name] = append(documented[m.name], m)
		if m.direction != "client" && m.direction != "server" {
			t.Errorf("WebSocket message %s (name %q) has x-direction %q, want client or server", m.ref, m.name, m.direction)
		}
	}

	for _, typ := range sortedKeys(wants) {
		w := wants[typ]
		t.Run(typ, func(t *testing.T) {
			ms := documented[typ]
			switch {
			case len(ms) == 0:
				t.Errorf("%s: channel %q (address %s) has no message named %q, which %s lists as a %s message",
					apiDocPath, ws.key, wsAddress, typ, w.source, w.direction)
			case len(ms) > 1:
				t.Errorf("%s: channel %q (address %s) has %d messages named %q, want one", apiDocPath, ws.key, wsAddress, len(ms), typ)
			case ms[0].direction != w.direction:
				t.Errorf("%s: WebSocket message %q (%s) has x-direction %q, want %q because it is in %s",
					apiDocPath, typ, ms[0].ref, ms[0].direction, w.direction, w.source)
			}
		})
	}
	for _, name := range sortedKeys(documented) {
		if _, ok := wants[name]; !ok {
			for _, m := range documented[name] {
				t.Errorf("%s: channel %q (address %s) lists message %q (%s, x-direction %q) that the code does not have: it is in neither protocol.ClientMessageTypes nor protocol.ServerMessageTypes",
					apiDocPath, ws.key, wsAddress, name, m.ref, m.direction)
			}
		}
	}
}

// (b) and (c): every topic is a channel whose address is the topic, every
// non-WebSocket channel is a topic, and each topic's messages are exactly
// events.TopicTypes[topic].
func TestAsyncAPIKafkaTopics(t *testing.T) {
	doc := loadAPIDoc(t)
	byAddr := map[string][]apiChannel{}
	for _, c := range doc.channels(t) {
		if c.address == wsAddress {
			continue
		}
		byAddr[c.address] = append(byAddr[c.address], c)
		if !slices.Contains(events.Topics, c.address) {
			t.Errorf("%s: channel %q has address %q, which is not a topic in events.Topics %v", apiDocPath, c.key, c.address, events.Topics)
		}
		for _, m := range c.messages {
			if m.direction != "" {
				t.Errorf("%s: message %q (%s) on Kafka channel %q has x-direction %q; only WebSocket messages have one", apiDocPath, m.name, m.ref, c.key, m.direction)
			}
		}
	}
	for topic := range events.TopicTypes {
		if !slices.Contains(events.Topics, topic) {
			t.Errorf("events.TopicTypes has topic %q that is not in events.Topics", topic)
		}
	}
	for _, topic := range events.Topics {
		t.Run(topic, func(t *testing.T) {
			chans := byAddr[topic]
			if len(chans) != 1 {
				t.Fatalf("%s: want exactly one channel with address %q (topic in events.Topics), found %d", apiDocPath, topic, len(chans))
			}
			c := chans[0]
			types, ok := events.TopicTypes[topic]
			if !ok {
				t.Fatalf("events.TopicTypes has no entry for topic %q", topic)
			}
			var names []string
			seen := map[string]bool{}
			for _, m := range c.messages {
				if seen[m.name] {
					t.Errorf("%s: channel %q (topic %s) lists message %q twice", apiDocPath, c.key, topic, m.name)
				}
				seen[m.name] = true
				names = append(names, m.name)
			}
			missing, extra := diff(types, names)
			for _, n := range missing {
				t.Errorf("%s: channel %q (topic %s) has no message named %q, which events.TopicTypes[%q] lists", apiDocPath, c.key, topic, n, topic)
			}
			for _, n := range extra {
				t.Errorf("%s: channel %q (topic %s) lists message %q, which events.TopicTypes[%q] does not have", apiDocPath, c.key, topic, n, topic)
			}
		})
	}
}

// The enums of the document are the constants of the code.
func TestAsyncAPIEnums(t *testing.T) {
	doc := loadAPIDoc(t)
	ws := doc.wsChannel(t)
	var tripUpdated apiMessage
	for _, c := range doc.channels(t) {
		if c.address == events.TopicTripEvents {
			tripUpdated = c.message(t, events.TypeTripUpdated)
		}
	}
	if tripUpdated.obj == nil {
		t.Fatalf("no %s message on topic %s", events.TypeTripUpdated, events.TopicTripEvents)
	}
	codes := constants(t, "../protocol", "Code")
	states := constants(t, "../ride", "State")

	tests := []struct {
		name   string
		schema any
		where  string
		want   map[string]string // constant name → value
		source string
	}{
		{"error codes", doc.property(t, ws.message(t, protocol.MsgError).obj["payload"], "error message payload", "code"),
			"the code of the WebSocket error message", codes, "protocol.Code*"},
		{"trip push states", doc.property(t, ws.message(t, protocol.PushTrip).obj["payload"], "trip message payload", "state"),
			"the state of the WebSocket trip message", states, "ride.State*"},
		{"resync trip states", doc.property(t, ws.message(t, protocol.PushResync).obj["payload"], "resync message payload", "trip"),
			"the trip of the WebSocket resync message", states, "ride.State*"},
		{"trip.updated states", doc.property(t, tripUpdated.obj["payload"], "trip.updated payload", "payload", "trip", "state"),
			"payload.trip.state of the trip.updated event", states, "ride.State*"},
		{"trip.updated causes", doc.property(t, tripUpdated.obj["payload"], "trip.updated payload", "payload", "cause"),
			"payload.cause of the trip.updated event", typesAsConstants(events.TopicTypes[events.TopicTripCommands]), "events.TopicTypes[trip.commands]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			schema := tc.schema
			if tc.name == "resync trip states" {
				// trip is oneOf [TripMessage, null].
				f := doc.mustFlatten(t, schema, tc.where)
				alts, _ := f["oneOf"].([]any)
				schema = nil
				for _, a := range alts {
					if p := propsOf(doc.mustFlatten(t, a, tc.where)); p["state"] != nil {
						schema = p["state"]
					}
				}
				if schema == nil {
					t.Fatalf("%s: no alternative with a state property", tc.where)
				}
			}
			got := doc.stringEnum(t, schema, tc.where)
			byValue := map[string]string{}
			var want []string
			for name, v := range tc.want {
				byValue[v] = name
				want = append(want, v)
			}
			missing, extra := diff(want, got)
			for _, v := range missing {
				t.Errorf("%s: the enum of %s lacks %q (%s)", apiDocPath, tc.where, v, byValue[v])
			}
			for _, v := range extra {
				t.Errorf("%s: the enum of %s has %q, which is not one of %s", apiDocPath, tc.where, v, tc.source)
			}
		})
	}
}

func typesAsConstants(types []string) map[string]string {
	out := map[string]string{}
	for _, t := range types {
		out[t] = t
	}
	return out
}

// Every $ref resolves, every operation names a channel and messages of that
// channel, and every message of every channel is used by an operation.
func TestAsyncAPIOperations(t *testing.T) {
	doc := loadAPIDoc(t)
	var walk func(n any, at string)
	walk = func(n any, at string) {
		switch v := n.(type) {
		case map[string]any:
			if r, ok := v["$ref"]; ok {
				rs, _ := r.(string)
				if _, err := doc.pointer(rs); err != nil {
					t.Errorf("%s at %s: %v", apiDocPath, at, err)
				}
			}
			for _, k := range sortedKeys(v) {
				walk(v[k], at+"/"+k)
			}
		case []any:
			for i, e := range v {
				walk(e, fmt.Sprintf("%s/%d", at, i))
			}
		}
	}
	walk(doc.root, "#")

	ops, _ := doc.root["operations"].(map[string]any)
	if len(ops) == 0 {
		t.Fatalf("%s has no operations", apiDocPath)
	}
	used := map[string]bool{} // "#/channels/<ch>/messages/<key>"
	opsOf := map[string]int{} // channel key → operations
	checkMsgs := func(op, chRef string, list any, what string) {
		l, ok := list.([]any)
		if !ok || len(l) == 0 {
			t.Errorf("operation %q: %s lists no messages", op, what)
			return
		}
		for _, m := range l {
			r := refOf(m)
			if !strings.HasPrefix(r, chRef+"/messages/") {
				t.Errorf("operation %q: %s message %q is not a message of its channel %s", op, what, r, chRef)
				continue
			}
			used[r] = true
		}
	}
	for _, name := range sortedKeys(ops) {
		op, err := doc.object(ops[name])
		if err != nil {
			t.Errorf("operation %q: %v", name, err)
			continue
		}
		if a := op["action"]; a != "send" && a != "receive" {
			t.Errorf("operation %q has action %v, want send or receive", name, a)
		}
		chRef := refOf(op["channel"])
		if !strings.HasPrefix(chRef, "#/channels/") || strings.Count(chRef, "/") != 2 {
			t.Errorf("operation %q: channel must be a $ref to #/channels/<name>, got %q", name, chRef)
			continue
		}
		opsOf[strings.TrimPrefix(chRef, "#/channels/")]++
		checkMsgs(name, chRef, op["messages"], "messages")
		if reply, ok := op["reply"].(map[string]any); ok {
			rch := refOf(reply["channel"])
			if rch == "" {
				rch = chRef
			}
			checkMsgs(name, rch, reply["messages"], "reply")
		}
	}
	for _, c := range doc.channels(t) {
		if opsOf[c.key] == 0 {
			t.Errorf("channel %q (address %q) has no operation", c.key, c.address)
		}
		for _, m := range c.messages {
			if r := "#/channels/" + c.key + "/messages/" + m.key; !used[r] {
				t.Errorf("message %q (%s) of channel %q is in no operation", m.name, r, c.key)
			}
		}
	}
}

// jsonFields lists the JSON names of a struct's fields.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

// The document's fields are the Go structs' fields.
func TestAsyncAPIFieldsMatchGo(t *testing.T) {
	doc := loadAPIDoc(t)
	schemas, _ := doc.root["components"].(map[string]any)["schemas"].(map[string]any)
	propNames := func(t *testing.T, schema any, where string) []string {
		return sortedKeys(propsOf(doc.mustFlatten(t, schema, where)))
	}
	check := func(t *testing.T, where string, want, got []string, source string) {
		t.Helper()
		missing, extra := diff(want, got)
		for _, f := range missing {
			t.Errorf("%s: %s has no field %q, which %s has", apiDocPath, where, f, source)
		}
		for _, f := range extra {
			t.Errorf("%s: %s has field %q, which %s does not have", apiDocPath, where, f, source)
		}
	}

	t.Run("component schemas", func(t *testing.T) {
		for _, tc := range []struct {
			schema string
			goType any
		}{
			{"LatLng", ride.LatLng{}},
			{"Envelope", events.Envelope{}},
			{"DriverLocation", ride.DriverLocation{}},
			{"DriverAvailability", ride.DriverAvailability{}},
			{"TripCommand", ride.TripCommand{}},
			{"Offer", ride.Offer{}},
			{"Trip", ride.Trip{}},
			{"TripUpdated", ride.TripUpdated{}},
			{"Push", protocol.Push{}},
			{"DeadLetter", events.DeadLetter{}},
			{"OfferMessage", protocol.OfferMessage{}},
			{"TripMessage", protocol.TripMessage{}},
			{"DriverLocationMessage", protocol.DriverLocationMessage{}},
			{"MapStats", livemap.Stats{}},
			{"MapSnapshot", livemap.SnapshotMessage{}},
			{"MapDelta", livemap.DeltaMessage{}},
			{"MapDetail", livemap.Detail{}},
			{"MapDriverDetail", livemap.DriverDetail{}},
			{"MapTripDetail", livemap.TripDetail{}},
			{"MapHistoryEntry", livemap.HistoryEntry{}},
		} {
			typ := reflect.TypeOf(tc.goType)
			s, ok := schemas[tc.schema]
			if !ok {
				t.Errorf("%s: components/schemas has no %s (for Go %s)", apiDocPath, tc.schema, typ)
				continue
			}
			check(t, "components/schemas/"+tc.schema, jsonFields(typ), propNames(t, s, tc.schema), "Go "+typ.String())
		}
	})

	ws := doc.wsChannel(t)
	frameFields := jsonFields(reflect.TypeOf(protocol.Frame{}))
	answerFields := jsonFields(reflect.TypeOf(protocol.Answer{}))
	// The fields of each WebSocket message, as protocol.md defines them.
	wsFields := []struct {
		typ    string
		fields []string
		goType any // the struct that produces or reads them, with seq added for pushes
		within []string
		noSeq  bool // a live-map message: not a push, so no seq
	}{
		{protocol.MsgLocation, []string{"type", "id", "lat", "lng", "heading", "speed_mps", "at"}, nil, frameFields, false},
		{protocol.MsgAvailability, []string{"type", "id", "available"}, nil, frameFields, false},
		{protocol.MsgRideRequest, []string{"type", "id", "pickup", "dropoff"}, nil, frameFields, false},
		{protocol.MsgOfferAccept, []string{"type", "id", "offer_id", "trip_id"}, nil, frameFields, false},
		{protocol.MsgOfferDecline, []string{"type", "id", "offer_id", "trip_id"}, nil, frameFields, false},
		{protocol.MsgTripArrive, []string{"type", "id", "trip_id"}, nil, frameFields, false},
		{protocol.MsgTripStart, []string{"type", "id", "trip_id"}, nil, frameFields, false},
		{protocol.MsgTripComplete, []string{"type", "id", "trip_id"}, nil, frameFields, false},
		{protocol.MsgTripCancel, []string{"type", "id", "trip_id", "reason"}, nil, frameFields, false},
		{protocol.PushOffer, nil, protocol.OfferMessage{}, nil, false},
		{protocol.PushTrip, nil, protocol.TripMessage{}, nil, false},
		{protocol.PushDriverLocation, nil, protocol.DriverLocationMessage{}, nil, false},
		{protocol.PushResync, nil, protocol.ResyncMessage{}, nil, false},
		{protocol.MsgAck, []string{"type", "id", "trip_id"}, nil, answerFields, false},
		{protocol.MsgError, []string{"type", "id", "code", "message"}, nil, answerFields, false},
		{protocol.MsgMapInspect, []string{"type", "id", "kind", "slot"}, nil, frameFields, false},
		{protocol.MsgMapSnapshot, nil, livemap.SnapshotMessage{}, nil, true},
		{protocol.MsgMapDelta, nil, livemap.DeltaMessage{}, nil, true},
		{protocol.MsgMapDetail, nil, livemap.Detail{}, nil, true},
	}
	for _, tc := range wsFields {
		t.Run("ws "+tc.typ, func(t *testing.T) {
			m := ws.message(t, tc.typ)
			got := propNames(t, m.obj["payload"], m.ref)
			want, source := tc.fields, "protocol.md"
			if tc.goType != nil {
				typ := reflect.TypeOf(tc.goType)
				want, source = append(jsonFields(typ), "seq"), "Go "+typ.String()+" plus seq"
				if tc.noSeq {
					want, source = jsonFields(typ), "Go "+typ.String()
				}
			}
			check(t, fmt.Sprintf("the payload of WebSocket message %q (%s)", tc.typ, m.ref), want, got, source)
			for _, f := range tc.fields {
				if !slices.Contains(tc.within, f) {
					t.Errorf("protocol.md gives %q the field %q, which the Go struct that carries it does not have", tc.typ, f)
				}
			}
		})
	}

	payloadOf := map[string]any{
		events.TypeDriverLocation:     ride.DriverLocation{},
		events.TypeDriverAvailability: ride.DriverAvailability{},
		events.TypeTripUpdated:        ride.TripUpdated{},
		events.TypePush:               protocol.Push{},
		events.TypeDeadLetter:         events.DeadLetter{},
	}
	for _, typ := range events.TopicTypes[events.TopicTripCommands] {
		payloadOf[typ] = ride.TripCommand{}
	}
	envFields := jsonFields(reflect.TypeOf(events.Envelope{}))
	for _, c := range doc.channels(t) {
		if c.address == wsAddress {
			continue
		}
		for _, m := range c.messages {
			t.Run(c.address+" "+m.name, func(t *testing.T) {
				check(t, fmt.Sprintf("the envelope of %q on %s (%s)", m.name, c.address, m.ref), envFields,
					propNames(t, m.obj["payload"], m.ref), "Go events.Envelope")
				p, ok := payloadOf[m.name]
				if !ok {
					t.Fatalf("no Go payload type known for %q: add it to payloadOf so its fields are checked", m.name)
				}
				typ := reflect.TypeOf(p)
				inner := doc.property(t, m.obj["payload"], m.ref, "payload")
				check(t, fmt.Sprintf("payload.payload of %q on %s (%s)", m.name, c.address, m.ref), jsonFields(typ),
					propNames(t, inner, m.ref+" payload.payload"), "Go "+typ.String())
				tf := doc.mustFlatten(t, doc.property(t, m.obj["payload"], m.ref, "type"), m.ref+" payload.type")
				if tf["const"] != m.name {
					t.Errorf("%s: payload.type of %q (%s) must be const %q, got %v", apiDocPath, m.name, m.ref, m.name, tf["const"])
				}
			})
		}
	}
}
