package gateway

// These tests hold asyncapi.yaml (the machine-readable contract: the public
// WebSocket messages and the Kafka topics) and the code to each other. They
// read the document as plain YAML and follow its local $refs themselves.

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
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
