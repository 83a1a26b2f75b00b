package gateway

// These tests hold asyncapi.yaml (the machine-readable contract: the public
// WebSocket messages and the Kafka topics) and the code to each other. They
// read the document as plain YAML and follow its local $refs themselves.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/hexride/hexride/events"
	"github.com/hexride/hexride/livemap"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

const apiDocPath = "../asyncapi.yaml"

// wsAddress is the WebSocket channel's address.
const wsAddress = "/v1/ws"

// apiDoc is the parsed document.
type apiDoc struct {
	root map[string]any
}

type apiMessage struct {
	key       string // key under the channel's messages
	ref       string // where the message object really is, for error messages
	name      string
	direction string // x-direction; WebSocket messages only
	obj       map[string]any
}

type apiChannel struct {
	key      string
	address  string
	obj      map[string]any
	messages []apiMessage
}

func loadAPIDoc(t testing.TB) *apiDoc {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(apiDocPath))
	if err != nil {
		t.Fatalf("read the AsyncAPI document: %v", err)
	}
	var root map[string]any
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatalf("parse %s: %v", apiDocPath, err)
	}
	if v, _ := root["asyncapi"].(string); v != "3.0.0" {
		t.Fatalf("%s: asyncapi is %v, want 3.0.0", apiDocPath, root["asyncapi"])
	}
	return &apiDoc{root: root}
}

// pointer resolves a local JSON pointer such as #/components/schemas/Trip.
func (d *apiDoc) pointer(ref string) (any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("$ref %q is not a local reference (#/...)", ref)
	}
	var cur any = d.root
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("$ref %q: nothing at %q", ref, tok)
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("$ref %q: no index %q", ref, tok)
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("$ref %q: cannot descend into %T at %q", ref, cur, tok)
		}
	}
	return cur, nil
}

// deref follows $ref until it reaches something that is not a reference.
func (d *apiDoc) deref(n any) (any, error) {
	for range 32 {
		m, ok := n.(map[string]any)
		if !ok {
			return n, nil
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return n, nil
		}
		var err error
		if n, err = d.pointer(ref); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("$ref chain longer than 32")
}

func (d *apiDoc) object(n any) (map[string]any, error) {
	v, err := d.deref(n)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want an object, got %T", v)
	}
	return m, nil
}

func refOf(n any) string {
	if m, ok := n.(map[string]any); ok {
		if r, ok := m["$ref"].(string); ok {
			return r
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// channels lists every channel with its messages, in key order.
func (d *apiDoc) channels(t testing.TB) []apiChannel {
	t.Helper()
	chans, ok := d.root["channels"].(map[string]any)
	if !ok || len(chans) == 0 {
		t.Fatalf("%s has no channels", apiDocPath)
	}
	var out []apiChannel
	for _, ck := range sortedKeys(chans) {
		cobj, err := d.object(chans[ck])
		if err != nil {
			t.Fatalf("channel %q: %v", ck, err)
		}
		addr, _ := cobj["address"].(string)
		if addr == "" {
			t.Errorf("channel %q has no address", ck)
		}
		ch := apiChannel{key: ck, address: addr, obj: cobj}
		msgs, _ := cobj["messages"].(map[string]any)
		if len(msgs) == 0 {
			t.Errorf("channel %q (address %q) has no messages", ck, addr)
		}
		for _, mk := range sortedKeys(msgs) {
			where := fmt.Sprintf("#/channels/%s/messages/%s", ck, mk)
			if r := refOf(msgs[mk]); r != "" {
				where = r
			}
			mobj, err := d.object(msgs[mk])
			if err != nil {
				t.Fatalf("channel %q message %q: %v", ck, mk, err)
			}
			name, _ := mobj["name"].(string)
			if name == "" {
				t.Errorf("message %s (on channel %q) has no name; the convention is name = the type string", where, ck)
			}
			dir, _ := mobj["x-direction"].(string)
			ch.messages = append(ch.messages, apiMessage{key: mk, ref: where, name: name, direction: dir, obj: mobj})
		}
		out = append(out, ch)
	}
	return out
}

// wsChannel returns the one channel whose address is /v1/ws.
func (d *apiDoc) wsChannel(t testing.TB) apiChannel {
	t.Helper()
	var found []apiChannel
	for _, c := range d.channels(t) {
		if c.address == wsAddress {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: want exactly one channel with address %q, found %d", apiDocPath, wsAddress, len(found))
	}
	return found[0]
}

// message returns the message named name on the channel.
func (c apiChannel) message(t testing.TB, name string) apiMessage {
	t.Helper()
	var found []apiMessage
	for _, m := range c.messages {
		if m.name == name {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("channel %q (address %q): want exactly one message named %q, found %d", c.key, c.address, name, len(found))
	}
	return found[0]
}

// flatten merges a schema with its allOf parts into one set of keywords:
// properties and required are unioned (a later definition of a property
// wins), other keywords are copied. It is for reading the document's
// fields and constraints, not for validation (see validate).
func (d *apiDoc) flatten(schema any) (map[string]any, error) {
	m, err := d.object(schema)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	props := map[string]any{}
	var req []any
	merge := func(k string, v any) error {
		switch k {
		case "allOf", "$ref":
		case "properties":
			pm, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("properties is %T, not an object", v)
			}
			for pk, pv := range pm {
				props[pk] = pv
			}
		case "required":
			rl, ok := v.([]any)
			if !ok {
				return fmt.Errorf("required is %T, not a list", v)
			}
			req = append(req, rl...)
		default:
			out[k] = v
		}
		return nil
	}
	if all, ok := m["allOf"].([]any); ok {
		for _, sub := range all {
			f, err := d.flatten(sub)
			if err != nil {
				return nil, err
			}
			for _, k := range sortedKeys(f) {
				if err := merge(k, f[k]); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, k := range sortedKeys(m) {
		if err := merge(k, m[k]); err != nil {
			return nil, err
		}
	}
	if len(props) > 0 {
		out["properties"] = props
	}
	if len(req) > 0 {
		out["required"] = req
	}
	return out, nil
}

func (d *apiDoc) mustFlatten(t testing.TB, schema any, where string) map[string]any {
	t.Helper()
	f, err := d.flatten(schema)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return f
}

func propsOf(flat map[string]any) map[string]any {
	p, _ := flat["properties"].(map[string]any)
	return p
}

func requiredOf(flat map[string]any) map[string]bool {
	out := map[string]bool{}
	rl, _ := flat["required"].([]any)
	for _, r := range rl {
		if s, ok := r.(string); ok {
			out[s] = true
		}
	}
	return out
}

// stringEnum reads the enum of a (flattened) schema.
func (d *apiDoc) stringEnum(t testing.TB, schema any, where string) []string {
	t.Helper()
	f := d.mustFlatten(t, schema, where)
	raw, ok := f["enum"].([]any)
	if !ok {
		t.Fatalf("%s has no enum", where)
	}
	var out []string
	for _, v := range raw {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("%s: enum value %v is not a string", where, v)
		}
		out = append(out, s)
	}
	return out
}

// property returns the schema of the property at path below schema.
func (d *apiDoc) property(t testing.TB, schema any, where string, path ...string) any {
	t.Helper()
	cur := schema
	for i, p := range path {
		f := d.mustFlatten(t, cur, where)
		next, ok := propsOf(f)[p]
		if !ok {
			t.Fatalf("%s has no property %s", where, strings.Join(path[:i+1], "."))
		}
		cur = next
	}
	return cur
}

// diff reports what want has that got lacks, and what got has that want lacks.
func diff(want, got []string) (missing, extra []string) {
	w := map[string]bool{}
	for _, s := range want {
		w[s] = true
	}
	g := map[string]bool{}
	for _, s := range got {
		g[s] = true
	}
	for s := range w {
		if !g[s] {
			missing = append(missing, s)
		}
	}
	for s := range g {
		if !w[s] {
			extra = append(extra, s)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return missing, extra
}

// constants returns the string constants named prefix* declared in the Go
// files (not tests) of dir, so a constant added to the code is checked
// against the document without editing this test.
func constants(t testing.TB, dir, prefix string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", path, err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, prefix) || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					s, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatalf("%s: %s: %v", path, name.Name, err)
					}
					out[name.Name] = s
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s* string constants in %s", prefix, dir)
	}
	return out
}

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
	for typ := range ClientMessageTypes {
		wants[typ] = want{"client", "gateway.ClientMessageTypes"}
	}
	for _, typ := range ServerMessageTypes {
		if w, dup := wants[typ]; dup {
			t.Errorf("type %q is in both %s and gateway.ServerMessageTypes", typ, w.source)
		}
		wants[typ] = want{"server", "gateway.ServerMessageTypes"}
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
				t.Errorf("%s: channel %q (address %s) lists message %q (%s, x-direction %q) that the gateway does not have: it is in neither gateway.ClientMessageTypes nor gateway.ServerMessageTypes",
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
	codes := constants(t, ".", "Code")
	states := constants(t, "../ride", "State")

	tests := []struct {
		name   string
		schema any
		where  string
		want   map[string]string // constant name → value
		source string
	}{
		{"error codes", doc.property(t, ws.message(t, MsgError).obj["payload"], "error message payload", "code"),
			"the code of the WebSocket error message", codes, "gateway.Code*"},
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
	frameFields := jsonFields(reflect.TypeOf(Frame{}))
	answerFields := jsonFields(reflect.TypeOf(answer{}))
	// The fields of each WebSocket message, as protocol.md defines them.
	wsFields := []struct {
		typ    string
		fields []string
		goType any // the struct that produces or reads them, with seq added for pushes
		within []string
		noSeq  bool // a live-map message: not a push, so no seq
	}{
		{MsgLocation, []string{"type", "id", "lat", "lng", "heading", "speed_mps", "at"}, nil, frameFields, false},
		{MsgAvailability, []string{"type", "id", "available"}, nil, frameFields, false},
		{MsgRideRequest, []string{"type", "id", "pickup", "dropoff"}, nil, frameFields, false},
		{MsgOfferAccept, []string{"type", "id", "offer_id", "trip_id"}, nil, frameFields, false},
		{MsgOfferDecline, []string{"type", "id", "offer_id", "trip_id"}, nil, frameFields, false},
		{MsgTripArrive, []string{"type", "id", "trip_id"}, nil, frameFields, false},
		{MsgTripStart, []string{"type", "id", "trip_id"}, nil, frameFields, false},
		{MsgTripComplete, []string{"type", "id", "trip_id"}, nil, frameFields, false},
		{MsgTripCancel, []string{"type", "id", "trip_id", "reason"}, nil, frameFields, false},
		{protocol.PushOffer, nil, protocol.OfferMessage{}, nil, false},
		{protocol.PushTrip, nil, protocol.TripMessage{}, nil, false},
		{protocol.PushDriverLocation, nil, protocol.DriverLocationMessage{}, nil, false},
		{protocol.PushResync, nil, protocol.ResyncMessage{}, nil, false},
		{MsgAck, []string{"type", "id", "trip_id"}, nil, answerFields, false},
		{MsgError, []string{"type", "id", "code", "message"}, nil, answerFields, false},
		{MsgMapInspect, []string{"type", "id", "kind", "slot"}, nil, frameFields, false},
		{MsgMapSnapshot, nil, livemap.SnapshotMessage{}, nil, true},
		{MsgMapDelta, nil, livemap.DeltaMessage{}, nil, true},
		{MsgMapDetail, nil, livemap.Detail{}, nil, true},
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

// normalize turns a YAML or Go value into what encoding/json would decode
// from its JSON.
func normalize(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func jsonType(v any) string {
	switch n := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if n == math.Trunc(n) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// validate checks a JSON value (as encoding/json decodes it into any)
// against a schema, with the JSON Schema keywords this document uses. It
// returns one line per violation.
func (d *apiDoc) validate(t testing.TB, schema any, v any, at string) []string {
	s, err := d.object(schema)
	if err != nil {
		return []string{fmt.Sprintf("%s: schema: %v", at, err)}
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			errs = append(errs, d.validate(t, sub, v, at)...)
		}
	}
	if anyOf, ok := s["anyOf"].([]any); ok {
		okCount := 0
		for _, sub := range anyOf {
			if len(d.validate(t, sub, v, at)) == 0 {
				okCount++
			}
		}
		if okCount == 0 {
			fail("matches none of anyOf")
		}
	}
	if oneOf, ok := s["oneOf"].([]any); ok {
		var okCount int
		var why []string
		for i, sub := range oneOf {
			e := d.validate(t, sub, v, fmt.Sprintf("%s(oneOf %d)", at, i))
			if len(e) == 0 {
				okCount++
			}
			why = append(why, e...)
		}
		if okCount != 1 {
			fail("matches %d of oneOf, want 1: %s", okCount, strings.Join(why, "; "))
		}
	}
	if ty, ok := s["type"]; ok {
		var allowed []string
		switch tv := ty.(type) {
		case string:
			allowed = []string{tv}
		case []any:
			for _, x := range tv {
				if xs, ok := x.(string); ok {
					allowed = append(allowed, xs)
				}
			}
		}
		got := jsonType(v)
		match := slices.Contains(allowed, got) || (got == "integer" && slices.Contains(allowed, "number"))
		if !match {
			fail("is %s %v, want type %v", got, v, allowed)
			return errs
		}
	}
	if c, ok := s["const"]; ok && !reflect.DeepEqual(normalize(t, c), v) {
		fail("is %v, want const %v", v, c)
	}
	if e, ok := s["enum"].([]any); ok {
		found := false
		for _, x := range e {
			if reflect.DeepEqual(normalize(t, x), v) {
				found = true
			}
		}
		if !found {
			fail("%v is not in enum %v", v, e)
		}
	}
	switch x := v.(type) {
	case float64:
		if m, ok := toFloat(s["minimum"]); ok && x < m {
			fail("%v is below minimum %v", x, m)
		}
		if m, ok := toFloat(s["maximum"]); ok && x > m {
			fail("%v is above maximum %v", x, m)
		}
		if m, ok := toFloat(s["exclusiveMinimum"]); ok && x <= m {
			fail("%v is not above exclusiveMinimum %v", x, m)
		}
		if m, ok := toFloat(s["exclusiveMaximum"]); ok && x >= m {
			fail("%v is not below exclusiveMaximum %v", x, m)
		}
	case string:
		// The document counts bytes, as the code does.
		if m, ok := toFloat(s["maxLength"]); ok && float64(len(x)) > m {
			fail("%d bytes, longer than maxLength %v", len(x), m)
		}
		if m, ok := toFloat(s["minLength"]); ok && float64(len(x)) < m {
			fail("%d bytes, shorter than minLength %v", len(x), m)
		}
		if p, ok := s["pattern"].(string); ok {
			re, err := regexp.Compile(p)
			if err != nil {
				fail("bad pattern %q: %v", p, err)
			} else if !re.MatchString(x) {
				fail("%q does not match pattern %q", x, p)
			}
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				fail("%q is not an RFC 3339 date-time", x)
			}
		}
		if !utf8.ValidString(x) {
			fail("not UTF-8")
		}
	case []any:
		if items, ok := s["items"]; ok {
			for i, e := range x {
				errs = append(errs, d.validate(t, items, e, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	case map[string]any:
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, ok := x[r.(string)]; !ok {
					fail("lacks required field %q", r)
				}
			}
		}
		if props, ok := s["properties"].(map[string]any); ok {
			for _, k := range sortedKeys(props) {
				if pv, ok := x[k]; ok {
					errs = append(errs, d.validate(t, props[k], pv, at+"."+k)...)
				}
			}
		}
		if ap, ok := s["additionalProperties"].(bool); ok && !ap {
			props, _ := s["properties"].(map[string]any)
			for k := range x {
				if _, ok := props[k]; !ok {
					fail("has field %q, which the schema does not allow", k)
				}
			}
		}
	}
	return errs
}

// decodeStrict decodes b into v, refusing fields v does not have.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// Every message has an example; it validates against its own schema, and the
// code reads it: DecodeFrame takes client examples, the Go structs take the
// server and Kafka examples with no unknown field.
func TestAsyncAPIExamples(t *testing.T) {
	doc := loadAPIDoc(t)
	payloadOf := map[string]func() any{
		events.TypeDriverLocation:     func() any { return new(ride.DriverLocation) },
		events.TypeDriverAvailability: func() any { return new(ride.DriverAvailability) },
		events.TypeTripUpdated:        func() any { return new(ride.TripUpdated) },
		events.TypePush:               func() any { return new(protocol.Push) },
		events.TypeDeadLetter:         func() any { return new(events.DeadLetter) },
	}
	for _, typ := range events.TopicTypes[events.TopicTripCommands] {
		payloadOf[typ] = func() any { return new(ride.TripCommand) }
	}
	serverGo := map[string]func() any{
		protocol.PushOffer:          func() any { return new(protocol.OfferMessage) },
		protocol.PushTrip:           func() any { return new(protocol.TripMessage) },
		protocol.PushDriverLocation: func() any { return new(protocol.DriverLocationMessage) },
		protocol.PushResync:         func() any { return new(protocol.ResyncMessage) },
		MsgAck:                      func() any { return new(answer) },
		MsgError:                    func() any { return new(answer) },
		MsgMapSnapshot:              func() any { return new(livemap.SnapshotMessage) },
		MsgMapDelta:                 func() any { return new(livemap.DeltaMessage) },
		MsgMapDetail:                func() any { return new(livemap.Detail) },
	}
	for _, c := range doc.channels(t) {
		for _, m := range c.messages {
			t.Run(c.address+" "+m.name, func(t *testing.T) {
				exs, _ := m.obj["examples"].([]any)
				if len(exs) == 0 {
					t.Fatalf("%s: message %q (%s) has no examples", apiDocPath, m.name, m.ref)
				}
				for i, ex := range exs {
					exm, _ := ex.(map[string]any)
					payload, ok := exm["payload"]
					if !ok {
						t.Errorf("%s: example %d of %q has no payload", m.ref, i, m.name)
						continue
					}
					v := normalize(t, payload)
					for _, e := range doc.validate(t, m.obj["payload"], v, "example") {
						t.Errorf("%s: example %d of %q does not match its schema: %s", m.ref, i, m.name, e)
					}
					b, _ := json.Marshal(v)
					switch {
					case c.address == wsAddress && m.direction == "client":
						f, perr := DecodeFrame(b)
						if perr != nil {
							t.Errorf("%s: DecodeFrame refuses example %d of %q: %v\n%s", m.ref, i, m.name, perr, b)
						} else if f.Type != m.name {
							t.Errorf("%s: example %d of %q decodes as type %q", m.ref, i, m.name, f.Type)
						}
					case c.address == wsAddress:
						obj, _ := v.(map[string]any)
						delete(obj, "seq")
						b, _ := json.Marshal(obj)
						if mk, ok := serverGo[m.name]; ok {
							if err := decodeStrict(b, mk()); err != nil {
								t.Errorf("%s: example %d of %q does not fit its Go struct: %v", m.ref, i, m.name, err)
							}
						}
					default:
						e, err := events.Decode(b)
						if err != nil {
							t.Errorf("%s: events.Decode refuses example %d of %q: %v", m.ref, i, m.name, err)
							continue
						}
						if e.Type != m.name {
							t.Errorf("%s: example %d of %q has type %q", m.ref, i, m.name, e.Type)
						}
						if mk, ok := payloadOf[m.name]; ok {
							if err := decodeStrict(e.Payload, mk()); err != nil {
								t.Errorf("%s: the payload of example %d of %q does not fit its Go struct: %v", m.ref, i, m.name, err)
							}
						}
					}
				}
			})
		}
	}
}

// setPath sets (or deletes) the field at path; false if a parent is missing.
func setPath(obj map[string]any, path []string, v any, del bool) bool {
	for _, p := range path[:len(path)-1] {
		next, ok := obj[p].(map[string]any)
		if !ok {
			return false
		}
		obj = next
	}
	if del {
		delete(obj, path[len(path)-1])
	} else {
		obj[path[len(path)-1]] = v
	}
	return true
}

// The document's constraints on client messages are the ones DecodeFrame
// enforces: starting from each client message's example, a value the schema
// allows at a boundary is accepted, and a value it forbids (out of range,
// too long, wrong JSON type, not a time, a missing required field) is
// answered bad_request.
func TestAsyncAPIClientConstraintsMatchDecodeFrame(t *testing.T) {
	doc := loadAPIDoc(t)
	ws := doc.wsChannel(t)
	for _, m := range ws.messages {
		if m.direction != "client" {
			continue
		}
		exs, _ := m.obj["examples"].([]any)
		if len(exs) == 0 {
			t.Errorf("%s: client message %q has no example", m.ref, m.name)
			continue
		}
		base, _ := normalize(t, exs[0].(map[string]any)["payload"]).(map[string]any)
		if base == nil {
			t.Errorf("%s: the example of %q is not an object", m.ref, m.name)
			continue
		}
		type mutation struct {
			desc   string
			path   []string
			value  any
			delete bool
			ok     bool
		}
		var muts []mutation
		payload := doc.mustFlatten(t, m.obj["payload"], m.ref)
		var walk func(schema map[string]any, prefix []string)
		walk = func(schema map[string]any, prefix []string) {
			props := propsOf(schema)
			required := requiredOf(schema)
			for _, name := range sortedKeys(props) {
				path := append(slices.Clone(prefix), name)
				p := strings.Join(path, ".")
				ps := doc.mustFlatten(t, props[name], m.ref+" "+p)
				muts = append(muts, mutation{desc: "without " + p, path: path, delete: true, ok: !required[name]})
				ty, _ := ps["type"].(string)
				switch {
				case ty == "number" || ty == "integer":
					muts = append(muts, mutation{desc: p + " as a string", path: path, value: "1"})
				case ty == "string" || ps["const"] != nil:
					muts = append(muts, mutation{desc: p + " as a number", path: path, value: 5})
				case ty == "boolean":
					muts = append(muts, mutation{desc: p + " as a string", path: path, value: "true"})
				case ty == "object":
					muts = append(muts, mutation{desc: p + " as a string", path: path, value: "x"})
				}
				eps := func(x float64) float64 { return 1e-6 * math.Max(1, math.Abs(x)) }
				if x, ok := toFloat(ps["minimum"]); ok {
					muts = append(muts, mutation{desc: fmt.Sprintf("%s = minimum %v", p, x), path: path, value: x, ok: true},
						mutation{desc: fmt.Sprintf("%s below minimum %v", p, x), path: path, value: x - eps(x)})
				}
				if x, ok := toFloat(ps["maximum"]); ok {
					muts = append(muts, mutation{desc: fmt.Sprintf("%s = maximum %v", p, x), path: path, value: x, ok: true},
						mutation{desc: fmt.Sprintf("%s above maximum %v", p, x), path: path, value: x + eps(x)})
				}
				if x, ok := toFloat(ps["exclusiveMaximum"]); ok {
					muts = append(muts, mutation{desc: fmt.Sprintf("%s just below exclusiveMaximum %v", p, x), path: path, value: x - eps(x), ok: true},
						mutation{desc: fmt.Sprintf("%s = exclusiveMaximum %v", p, x), path: path, value: x})
				}
				if x, ok := toFloat(ps["maxLength"]); ok {
					muts = append(muts, mutation{desc: fmt.Sprintf("%s of maxLength %v bytes", p, x), path: path, value: strings.Repeat("x", int(x)), ok: true},
						mutation{desc: fmt.Sprintf("%s longer than maxLength %v", p, x), path: path, value: strings.Repeat("x", int(x)+1)})
				}
				if x, ok := toFloat(ps["minLength"]); ok && x >= 1 {
					muts = append(muts, mutation{desc: fmt.Sprintf("%s shorter than minLength %v", p, x), path: path, value: strings.Repeat("x", int(x)-1)})
				}
				if ps["format"] == "date-time" {
					muts = append(muts, mutation{desc: p + " not a time", path: path, value: "yesterday"},
						mutation{desc: p + " without a zone", path: path, value: "2026-11-22T21:00:00.120"})
				}
				if propsOf(ps) != nil {
					walk(ps, path)
				}
			}
		}
		walk(payload, nil)

		t.Run(m.name, func(t *testing.T) {
			b, _ := json.Marshal(base)
			if _, perr := DecodeFrame(b); perr != nil {
				t.Fatalf("%s: DecodeFrame refuses the example of %q: %v", m.ref, m.name, perr)
			}
			for _, mu := range muts {
				frame := normalize(t, base).(map[string]any)
				if !setPath(frame, mu.path, mu.value, mu.delete) {
					continue // the example has no object to put it in
				}
				b, _ := json.Marshal(frame)
				_, perr := DecodeFrame(b)
				switch {
				case mu.ok && perr != nil:
					t.Errorf("%q %s: the document allows it but DecodeFrame answers %v\nframe: %s", m.name, mu.desc, perr, b)
				case !mu.ok && perr == nil:
					t.Errorf("%q %s: the document forbids it but DecodeFrame accepts it\nframe: %s", m.name, mu.desc, b)
				case !mu.ok && perr.Code != CodeBadRequest:
					t.Errorf("%q %s: DecodeFrame answers code %q, want %q", m.name, mu.desc, perr.Code, CodeBadRequest)
				}
			}
		})
	}
}

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
		{"ack", MsgAck, normalize(t, answer{Type: MsgAck, ID: "1"})},
		{"ack with trip_id", MsgAck, normalize(t, answer{Type: MsgAck, ID: "r1", TripID: "t-0123456789abcdef0123"})},
		{"error with id", MsgError, normalize(t, answer{Type: MsgError, ID: "7", Code: CodeConflict, Message: "offer o-1 expired"})},
		{"error without id", MsgError, normalize(t, answer{Type: MsgError, Code: CodeBadRequest, Message: "malformed JSON"})},
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
		{events.TopicTripCommands, events.TypeRideRequest, "t-1", ride.TripCommand{TripID: "t-1", UserID: "r-1", Role: RoleRider, Pickup: &pickup, Dropoff: &dropoff}},
		{events.TopicTripCommands, events.TypeOfferAccept, "t-1", ride.TripCommand{TripID: "t-1", UserID: "d-42", Role: RoleDriver, OfferID: "o-1"}},
		{events.TopicTripCommands, events.TypeOfferDecline, "t-1", ride.TripCommand{TripID: "t-1", UserID: "d-42", Role: RoleDriver, OfferID: "o-1"}},
		{events.TopicTripCommands, events.TypeTripArrive, "t-1", ride.TripCommand{TripID: "t-1", UserID: "d-42", Role: RoleDriver}},
		{events.TopicTripCommands, events.TypeTripStart, "t-1", ride.TripCommand{TripID: "t-1", UserID: "d-42", Role: RoleDriver}},
		{events.TopicTripCommands, events.TypeTripComplete, "t-1", ride.TripCommand{TripID: "t-1", UserID: "d-42", Role: RoleDriver}},
		{events.TopicTripCommands, events.TypeTripCancel, "t-1", ride.TripCommand{TripID: "t-1", UserID: "r-1", Role: RoleRider}},
		{events.TopicTripCommands, events.TypeTripCancel, "t-1", ride.TripCommand{TripID: "t-1", UserID: "d-42", Role: RoleDriver, Reason: "flat tyre"}},
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
		{events.TopicUserPushes, events.TypePush, "driver:d-42", protocol.Push{UserID: "d-42", Role: RoleDriver, Message: mustJSON(protocol.NewOfferMessage(offered, offer))}},
		{events.TopicUserPushes, events.TypePush, "rider:r-1", protocol.Push{UserID: "r-1", Role: RoleRider, Message: mustJSON(tripMsg)}},
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
		{"map.snapshot", MsgMapSnapshot, normalize(t, json.RawMessage(snap))},
		{"map.delta", MsgMapDelta, normalize(t, json.RawMessage(delta))},
		{"map.detail driver", MsgMapDetail, normalize(t, driver)},
		{"map.detail trip", MsgMapDetail, normalize(t, trip)},
	}
}
