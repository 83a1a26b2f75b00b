package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/internal/redistest"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// published records what the gateway put on the log.
type published struct {
	mu   sync.Mutex
	outs []ev.Outgoing
}

func (p *published) Publish(_ context.Context, outs ...ev.Outgoing) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outs = append(p.outs, outs...)
	return nil
}

func (p *published) Send(ctx context.Context, outs ...ev.Outgoing) error {
	return p.Publish(ctx, outs...)
}

// noTrips answers every trip lookup with "none": the sockets under test
// only send availability, which needs no trip.
type noTrips struct{}

func (noTrips) Legal(string, string) bool { return false }
func (noTrips) Trip(context.Context, string) (ride.Trip, bool, error) {
	return ride.Trip{}, false, nil
}
func (noTrips) CurrentTrip(context.Context, string, string) (ride.Trip, bool, error) {
	return ride.Trip{}, false, nil
}

// Ended reports the trips whose ids start with "ended-" as ended.
func (noTrips) Ended(_ context.Context, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, id := range ids {
		out[id] = strings.HasPrefix(id, "ended-")
	}
	return out, nil
}

func startGateway(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	tokens := mustTokens(t, "session-test-secret")
	s := New(Config{}, tokens, &published{}, noTrips{}, rdb, nil)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return s, hs
}

func dialDriver(t *testing.T, s *Server, hs *httptest.Server, sub string) *websocket.Conn {
	t.Helper()
	tok, err := s.tokens.Mint(sub, protocol.RoleDriver, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/v1/ws?token="+tok, nil)
	if err != nil {
		t.Fatalf("dial as %s: %v", sub, err)
	}
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *hub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for _, m := range h.users {
		n += len(m)
	}
	return n
}

// An idle socket costs the gateway one goroutine, its reader: the upgrade
// handler has returned and no writer waits on an empty queue. (Blocking in
// the handler, with a writer goroutine beside it, costs two goroutines and
// net/http's request state per socket: about 24 KB instead of 17; see
// docs/loadtest.md.) The sockets still carry answers and pushes, and Close
// ends them all with 1001.
func TestIdleSocketHoldsOneGoroutine(t *testing.T) {
	s, hs := startGateway(t)
	const n = 300
	runtime.GC()
	before := runtime.NumGoroutine()
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = dialDriver(t, s, hs, "idle-"+strconv.Itoa(i))
	}
	waitFor(t, "every socket registered", func() bool { return s.hub.count() == n })
	time.Sleep(100 * time.Millisecond) // let handler goroutines finish returning
	perSocket := float64(runtime.NumGoroutine()-before) / n
	t.Logf("%d idle sockets: %.2f goroutines each (client side included: none)", n, perSocket)
	if perSocket > 1.1 {
		t.Fatalf("an idle socket costs %.2f goroutines; want 1 (the reader)", perSocket)
	}

	// A command still gets its answer, and a push still arrives, in order.
	c := conns[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"availability","available":true,"id":"a1"}`)); err != nil {
		t.Fatal(err)
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var a protocol.Answer
	if err := json.Unmarshal(b, &a); err != nil || a.Type != protocol.MsgAck || a.ID != "a1" {
		t.Fatalf("answer %s (%v); want an ack of a1", b, err)
	}
	s.hub.deliver(ride.UserKey(protocol.RoleDriver, "idle-0"), 1, []byte(`{"type":"trip","seq":1}`), Timing{})
	s.hub.deliver(ride.UserKey(protocol.RoleDriver, "idle-0"), 2, []byte(`{"type":"trip","seq":2}`), Timing{})
	for want := 1; want <= 2; want++ {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(b); !strings.Contains(got, `"seq":`+strconv.Itoa(want)) {
			t.Fatalf("push %d: got %s", want, got)
		}
	}

	// Phones read all the time; each hears why its socket ended.
	statuses := make(chan websocket.StatusCode, n)
	for _, c := range conns {
		go func() {
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					statuses <- websocket.CloseStatus(err)
					return
				}
			}
		}()
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if err := s.Close(cctx); err != nil {
		t.Fatal(err)
	}
	for range conns {
		if got := <-statuses; got != websocket.StatusGoingAway {
			t.Fatalf("a socket ended with status %d after Close; want 1001", got)
		}
	}
	if s.hub.count() != 0 {
		t.Fatalf("%d sessions still registered after Close", s.hub.count())
	}
}

// A phone may send frames right behind its upgrade request, before it sees
// the 101: they land in net/http's buffer, and the small buffers the socket
// gets instead must carry them over, whether they fit or not.
func TestFramesSentWithTheUpgradeAreRead(t *testing.T) {
	s, hs := startGateway(t)
	for _, tc := range []struct {
		name   string
		frames int
	}{
		{"none", 0},
		{"one", 1},
		{"more than a small buffer holds", 2 * phoneBufferSize / 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := s.tokens.Mint("early-"+strconv.Itoa(tc.frames), protocol.RoleDriver, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			var req bytes.Buffer
			fmt.Fprintf(&req, "GET /v1/ws?token=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", tok, hs.Listener.Addr())
			var ids []string
			for i := range tc.frames {
				id := fmt.Sprintf("e%02d", i)
				ids = append(ids, id)
				writeMaskedText(&req, fmt.Sprintf(`{"type":"availability","available":true,"id":%q}`, id))
			}
			if tc.frames > 1 && req.Len() < 2*phoneBufferSize {
				t.Fatalf("the early frames take %d bytes, want more than %d", req.Len(), 2*phoneBufferSize)
			}
			if _, err := conn.Write(req.Bytes()); err != nil { // one write: the frames travel with the upgrade
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade answered %s", resp.Status)
			}
			for _, id := range ids {
				b := readServerFrame(t, br)
				if want := `"id":"` + id + `"`; !strings.Contains(string(b), `"type":"ack"`) || !strings.Contains(string(b), want) {
					t.Fatalf("got %s, want the ack of %s", b, id)
				}
			}
		})
	}
}

// writeMaskedText appends a client text frame (clients must mask).
func writeMaskedText(w *bytes.Buffer, payload string) {
	w.WriteByte(0x81)
	if n := len(payload); n < 126 {
		w.WriteByte(0x80 | byte(n))
	} else {
		w.WriteByte(0x80 | 126)
		w.WriteByte(byte(n >> 8))
		w.WriteByte(byte(n))
	}
	key := [4]byte{1, 2, 3, 4}
	w.Write(key[:])
	for i := range len(payload) {
		w.WriteByte(payload[i] ^ key[i%4])
	}
}

// readServerFrame reads one unmasked server frame's payload.
func readServerFrame(t *testing.T, r *bufio.Reader) []byte {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = int(ext[0])<<8 | int(ext[1])
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read frame payload: %v", err)
	}
	return b
}

// TestCloseCutsPhonesThatDoNotAnswer: a phone that never reads does not
// answer the 1001; Close must cut it after its grace, not wait out the
// close handshake.
func TestCloseCutsPhonesThatDoNotAnswer(t *testing.T) {
	s, hs := startGateway(t)
	for i := range 3 {
		c := dialDriver(t, s, hs, "silent-"+strconv.Itoa(i)) // nobody reads c
		defer c.CloseNow()
	}
	waitFor(t, "3 sessions", func() bool {
		s.sessions.mu.Lock()
		defer s.sessions.mu.Unlock()
		return len(s.sessions.open) == 3
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v after %s", err, time.Since(start).Round(time.Millisecond))
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Close took %s; want about closeGrace (%s)", took, closeGrace)
	}
}

// TestReadFrame: frames of every size up to the limit arrive whole through
// the pooled buffers, one after another on a socket, and a frame over the
// limit is an error.
func TestReadFrame(t *testing.T) {
	sizes := []int{1, phoneBufferSize - 1, phoneBufferSize, phoneBufferSize + 1, 3 * phoneBufferSize, protocol.MaxFrameBytes, 7}
	type read struct {
		typ  websocket.MessageType
		data []byte
		err  error
	}
	reads := make(chan read, len(sizes)+1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(protocol.MaxFrameBytes)
		for {
			typ, buf, err := readFrame(r.Context(), c)
			if err != nil {
				reads <- read{err: err}
				return
			}
			reads <- read{typ: typ, data: bytes.Clone(*buf)}
			frameBuffers.Put(buf)
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for i, n := range append(sizes, protocol.MaxFrameBytes+1) {
		msg := bytes.Repeat([]byte{byte('a' + i)}, n)
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		got := <-reads
		if n > protocol.MaxFrameBytes {
			if got.err == nil {
				t.Fatalf("a frame of %d bytes was read; the limit is %d", n, protocol.MaxFrameBytes)
			}
			return
		}
		if got.err != nil || got.typ != websocket.MessageText || !bytes.Equal(got.data, msg) {
			t.Fatalf("frame of %d bytes: read %d bytes (%v), type %v", n, len(got.data), got.err, got.typ)
		}
	}
}

// BenchmarkReadFrameContext: what the read's context costs when many
// sockets read at once. With the server's context (cancellable, shared by
// every socket), coder/websocket registers and removes a context.AfterFunc
// on it for every frame, all sockets on one lock; the gateway reads with
// context.Background(). 1,000 sockets, each frame a phone's location.
//
//	go test ./gateway -run XXX -bench ReadFrameContext -benchmem
func BenchmarkReadFrameContext(b *testing.B) {
	frame := []byte(`{"type":"location","lat":37.774912,"lng":-122.419415,"heading":90,"speed":8.9}`)
	shared, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
	}{{"server-context", shared}, {"no-context", context.Background()}} {
		b.Run(tc.name, func(b *testing.B) {
			const sockets = 1000
			var wg sync.WaitGroup
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := websocket.Accept(w, r, nil)
				if err != nil {
					return
				}
				defer c.CloseNow()
				defer wg.Done()
				for {
					_, buf, err := readFrame(tc.ctx, c)
					if err != nil {
						return
					}
					frameBuffers.Put(buf)
				}
			}))
			defer srv.Close()
			conns := make([]*websocket.Conn, sockets)
			for i := range conns {
				c, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				conns[i] = c
			}
			b.ReportAllocs()
			b.ResetTimer()
			var writers sync.WaitGroup
			for i, c := range conns {
				n := b.N / sockets
				if i < b.N%sockets {
					n++
				}
				writers.Add(1)
				go func() {
					defer writers.Done()
					for range n {
						if err := c.Write(context.Background(), websocket.MessageText, frame); err != nil {
							b.Error(err)
							return
						}
					}
					c.Close(websocket.StatusNormalClosure, "")
				}()
			}
			writers.Wait()
			wg.Wait() // every frame read: each reader reads up to the close
			b.StopTimer()
		})
	}
}

// exchange writes one frame and returns the answer the gateway sends back.
func exchange(ctx context.Context, t *testing.T, c *websocket.Conn, frame string) (protocol.Answer, []byte) {
	t.Helper()
	if err := c.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		t.Fatal(err)
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var a protocol.Answer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("answer %s: %v", b, err)
	}
	return a, b
}
