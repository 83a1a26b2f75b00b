package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/hexride/hexride/protocol"
)

// pending is a command sent with an id and not yet answered. It is resent
// with the same id after a reconnect or an `unavailable` answer, as the
// contract allows.
type pending struct {
	id    string
	kind  string
	trip  string
	frame []byte
	tries int
}

// behaviour is what a phone does; every method runs with phone.mu held.
type behaviour interface {
	// connected runs once the socket is up (first is false after a
	// reconnect, when pending commands have already been resent).
	connected(first bool, now time.Time)
	// push handles one push (offer, trip, driver.location, resync).
	push(f *protocol.ServerFrame, now time.Time)
	// answered handles the final ack or error of a pending command.
	answered(cmd pending, f *protocol.ServerFrame, now time.Time)
	// stop ends the phone's timers; the socket closes after it.
	stop()
	// gaveUp is called when the phone could not (re)connect.
	gaveUp(first bool)
}

// phone is one simulated app: a socket, resumed with after_seq when it
// drops, and at most one goroutine (run, which reads the socket). Timers run
// its other actions under mu.
type phone struct {
	r    *runner
	role string
	sub  string
	b    behaviour

	mu      sync.Mutex
	c       *websocket.Conn
	lastSeq int64
	nextID  uint32
	pend    []pending
	done    bool // finished or stopping: no more reconnects
	target  int  // index in runner.targets this phone connects to
}

var errNotConnected = errors.New("not connected")

// writeLocked writes one frame on the current socket. It passes no context:
// coder/websocket registers a context.AfterFunc per write on one that can
// be cancelled, and thousands of phones doing so on the run's context
// contend for its lock. The socket is closed when the run's context ends
// (run), which ends a write that waits.
func (p *phone) writeLocked(b []byte) error {
	if p.c == nil {
		return errNotConnected
	}
	if err := p.c.Write(context.Background(), websocket.MessageText, b); err != nil {
		p.r.m.clientFailure("write", err)
		return err
	}
	return nil
}

// commandLocked sends a command with a fresh id and remembers it until it
// is answered.
func (p *phone) commandLocked(cmd protocol.Frame) {
	p.nextID++
	cmd.ID = "c" + strconv.FormatUint(uint64(p.nextID), 10)
	b, err := json.Marshal(cmd)
	if err != nil {
		panic(err) // our own struct
	}
	p.pend = append(p.pend, pending{id: cmd.ID, kind: cmd.Type, trip: cmd.TripID, frame: b})
	p.r.m.commandSent(cmd.Type)
	_ = p.writeLocked(b) // a lost write is resent after the reconnect
}

func (p *phone) takePending(id string) (pending, bool) {
	for i, c := range p.pend {
		if c.id == id {
			p.pend = append(p.pend[:i], p.pend[i+1:]...)
			return c, true
		}
	}
	return pending{}, false
}

func (p *phone) findPending(id string) *pending {
	for i := range p.pend {
		if p.pend[i].id == id {
			return &p.pend[i]
		}
	}
	return nil
}

// run connects, reads until the socket drops, and reconnects with
// after_seq until the phone is done.
func (p *phone) run() {
	defer p.r.forget(p)
	first, failures := true, 0
	for {
		c, err := p.dial(!first)
		if err != nil {
			failures++
			p.mu.Lock()
			done := p.done
			p.mu.Unlock()
			if done || p.r.ctx.Err() != nil || failures >= p.r.cfg.GiveUpAfter {
				p.mu.Lock()
				if !p.done {
					p.done = true
					p.b.gaveUp(first)
				}
				p.mu.Unlock()
				return
			}
			// Another gateway may take the phone at once; the same one is
			// given time to come back.
			p.mu.Lock()
			p.target = (p.target + 1) % len(p.r.targets)
			p.mu.Unlock()
			sleepCtx(p.r.ctx, min(time.Duration(failures)*500*time.Millisecond, 2*time.Second))
			continue
		}
		failures = 0
		now := time.Now()
		p.mu.Lock()
		if p.done {
			p.mu.Unlock()
			c.CloseNow()
			return
		}
		p.c = c
		// Reads and writes pass no context (writeLocked); this ends them
		// when the run's context does.
		unhook := context.AfterFunc(p.r.ctx, func() { c.CloseNow() })
		if !first {
			p.r.m.reconnects.Add(1)
			for _, cmd := range p.pend {
				_ = p.writeLocked(cmd.frame)
			}
		}
		p.b.connected(first, now)
		p.mu.Unlock()
		first = false

		p.readLoop(c)
		unhook()

		p.mu.Lock()
		p.c = nil
		done := p.done
		p.mu.Unlock()
		if done {
			c.Close(websocket.StatusNormalClosure, "")
			return
		}
		c.CloseNow()
		if p.r.ctx.Err() != nil {
			return
		}
		p.r.m.disconnects.Add(1)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// dial fetches a development token and opens the socket, resuming after the
// last seq seen when this is a reconnect.
func (p *phone) dial(resume bool) (*websocket.Conn, error) {
	select {
	case p.r.connSem <- struct{}{}:
	case <-p.r.ctx.Done():
		return nil, p.r.ctx.Err()
	}
	defer func() { <-p.r.connSem }()
	ctx, cancel := context.WithTimeout(p.r.ctx, 15*time.Second)
	defer cancel()
	p.mu.Lock()
	ep := p.r.targets[p.target%len(p.r.targets)]
	u := ep.ws
	if resume {
		u += "?after_seq=" + strconv.FormatInt(p.lastSeq, 10)
	}
	p.mu.Unlock()
	tok, err := p.r.tokenFrom(ctx, ep.token, p.role, p.sub)
	if err != nil {
		p.r.m.clientFailure("token", err)
		return nil, err
	}
	c, err := p.r.dialWS(ctx, u, tok)
	if err != nil {
		p.r.m.clientFailure("dial", err)
		return nil, err
	}
	c.SetReadLimit(64 << 10)
	return c, nil
}

// dialWS opens a socket at u with token tok, as the apps do: no
// compression, handshakes on the runner's unpooled client.
func (r *runner) dialWS(ctx context.Context, u, tok string) (*websocket.Conn, error) {
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient:      r.wsClient,
		HTTPHeader:      http.Header{"Authorization": {"Bearer " + tok}},
		CompressionMode: websocket.CompressionDisabled,
	})
	return c, err
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (p *phone) readLoop(c *websocket.Conn) {
	for {
		_, rd, err := c.Reader(context.Background())
		if err != nil {
			return
		}
		buf := bufPool.Get().(*bytes.Buffer)
		buf.Reset()
		if _, err := buf.ReadFrom(rd); err != nil {
			bufPool.Put(buf)
			return
		}
		var f protocol.ServerFrame
		err = json.Unmarshal(buf.Bytes(), &f)
		if err != nil {
			p.r.m.clientFailure("decode", fmt.Errorf("%w: %.200q", err, buf.Bytes()))
		}
		bufPool.Put(buf)
		if err != nil {
			continue
		}
		now := time.Now()
		p.mu.Lock()
		p.handleLocked(&f, now)
		done := p.done
		p.mu.Unlock()
		if done {
			return
		}
	}
}

func (p *phone) handleLocked(f *protocol.ServerFrame, now time.Time) {
	switch f.Type {
	case protocol.MsgAck, protocol.MsgError:
		var cmd *pending
		if f.ID != "" {
			cmd = p.findPending(f.ID)
		}
		if f.Type == protocol.MsgError {
			kind := "?"
			switch {
			case cmd != nil:
				kind = cmd.kind
			case f.ID == "" && p.role == protocol.RoleDriver:
				kind = protocol.MsgLocation // the only frames sent without an id
				p.r.m.pingErrors.Add(1)
			}
			p.r.m.serverError(kind, f.Code, f.Message)
			// unavailable is safe to retry by the contract, and an outage of
			// the broker or Redis lasts seconds: an app keeps resending the
			// same command, backing off to once a second, for about a minute.
			if cmd != nil && (f.Code == protocol.CodeUnavailable && cmd.tries < 60 || f.Code == protocol.CodeRateLimited && cmd.tries < 5) {
				cmd.tries++
				p.retryLater(cmd.id, min(time.Duration(cmd.tries)*400*time.Millisecond, time.Second))
				return
			}
		}
		if cmd == nil {
			return
		}
		c, _ := p.takePending(f.ID)
		p.b.answered(c, f, now)
	case protocol.PushOffer, protocol.PushTrip, protocol.PushDriverLocation, protocol.PushResync:
		if f.Seq > 0 {
			if f.Seq <= p.lastSeq {
				return // already seen (a replay overlapping what arrived live)
			}
			p.lastSeq = f.Seq
		}
		switch f.Type {
		case protocol.PushTrip:
			p.r.m.recordPush(p.r.cfg, p.sub, f.Seq, &f.TripMessage, false, now)
			p.r.m.pushLatency(f.UpdatedAt, now)
		case protocol.PushResync:
			if f.Trip != nil {
				p.r.m.recordPush(p.r.cfg, p.sub, f.Seq, f.Trip, true, now)
			}
		case protocol.PushDriverLocation:
			p.r.m.locationLatency(f.At, now)
		}
		p.b.push(f, now)
	}
}

// retryLater resends a pending command with its id after d.
func (p *phone) retryLater(id string, d time.Duration) {
	time.AfterFunc(d, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.done {
			return
		}
		if cmd := p.findPending(id); cmd != nil {
			_ = p.writeLocked(cmd.frame)
		}
	})
}

// shutdown ends the phone from outside (the run is over): its behaviour
// stops, then the socket closes normally.
func (p *phone) shutdown() {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return
	}
	p.done = true
	p.b.stop()
	c := p.c
	p.mu.Unlock()
	if c != nil {
		c.Close(websocket.StatusNormalClosure, "load test over")
	}
}

// appendLocation encodes a location frame without reflection: it is the
// frame sent most often.
func appendLocation(b []byte, pos LatLng, heading, speed float64, at time.Time) []byte {
	b = append(b, `{"type":"`+protocol.MsgLocation+`","lat":`...)
	b = strconv.AppendFloat(b, pos.Lat, 'f', 7, 64)
	b = append(b, `,"lng":`...)
	b = strconv.AppendFloat(b, pos.Lng, 'f', 7, 64)
	if heading = math.Round(heading*10) / 10; heading >= 360 || heading < 0 {
		heading = 0
	}
	b = append(b, `,"heading":`...)
	b = strconv.AppendFloat(b, heading, 'f', 1, 64)
	b = append(b, `,"speed_mps":`...)
	b = strconv.AppendFloat(b, speed, 'f', 1, 64)
	b = append(b, `,"at":"`...)
	b = at.UTC().AppendFormat(b, protocol.TimeFormat)
	return append(b, `"}`...)
}

func parseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}
