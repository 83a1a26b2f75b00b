package protocol

import (
	"reflect"
	"strings"
	"testing"
)

// fields returns the JSON names of t's fields and their Go types, embedded
// structs' fields flattened as encoding/json does (no name clashes here).
func fields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous {
			for k, v := range fields(sf.Type) {
				out[k] = v
			}
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		out[name] = sf.Type
	}
	return out
}

// ServerFrame reads every server message: it has each of their fields, with
// the same Go type, and nothing else but seq.
func TestServerFrameIsTheUnionOfServerMessages(t *testing.T) {
	got := fields(reflect.TypeOf(ServerFrame{}))
	want := map[string]reflect.Type{"seq": reflect.TypeOf(int64(0))}
	for _, m := range []any{OfferMessage{}, TripMessage{}, DriverLocationMessage{}, ResyncMessage{}, Answer{}} {
		for name, typ := range fields(reflect.TypeOf(m)) {
			if prev, ok := want[name]; ok && prev != typ {
				t.Fatalf("field %q is %v in one server message and %v in %T", name, prev, typ, m)
			}
			want[name] = typ
			if g, ok := got[name]; !ok {
				t.Errorf("ServerFrame lacks %T's field %q", m, name)
			} else if g != typ {
				t.Errorf("ServerFrame's field %q is %v; %T has %v", name, g, m, typ)
			}
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("ServerFrame has field %q, which no server message has", name)
		}
	}
}
