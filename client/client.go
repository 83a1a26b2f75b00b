package client

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/hexride/hexride/protocol"
)

// Options tune a Client. The zero value is usable: every field has a default.
type Options struct {
	// Token, when set, is asked for a fresh token whenever the gateway
	// closes the socket with 4001 (token expired) or refuses a reconnect
	// with HTTP 401; the client then reconnects with it. Without it, 4001
	// ends the client with ErrTokenExpired. It is also asked for the first
	// token when Dial is given an empty one.
	Token func(ctx context.Context) (string, error)

	// AfterSeq resumes the first connection after this seq: the last push
	// your app handled, if it keeps it across restarts. 0 starts live (only
	// pushes from now on). Reconnects always resume after the last push
	// delivered (or from 0, everything the gateway retains, if none was).
	AfterSeq int64

	// Buffer is how many pushes wait for the app in Pushes (64). When it is
	// full the client stops reading the socket until the app takes one:
	// nothing is dropped, and answers to commands wait behind the pushes.
	// The gateway keeps up to 256 pushes for a socket that does not read;
	// past that it closes it with 1013, and the client reconnects and
	// resumes after the last push it delivered. So a slow app loses
	// nothing, but an app that stops reading for long reconnects (sooner
	// if a ping goes unanswered meanwhile: see PingInterval).
	Buffer int

	// MaxAttempts bounds how often one command is sent (5): it is resent,
	// with the same id, when its connection ends before its answer, when no
	// answer comes within AckTimeout, or when the answer is `unavailable`.
	MaxAttempts int
	// AckTimeout is how long one attempt waits for its answer (15s; the
	// gateway answers within 5s or says `unavailable`).
	AckTimeout time.Duration

	// MinBackoff and MaxBackoff bound the wait before a reconnect (250ms
	// and 30s): it doubles with each failed attempt, with jitter (half to
	// one and a half times), and starts again after a connection that
	// lasted.
	MinBackoff, MaxBackoff time.Duration
	// PolicyBackoff is the least wait after a close with 1008 (policy
	// violation: flooding), 5s as the gateway refuses the user's
	// handshakes for that long; a handshake refused with 429 waits its
	// Retry-After.
	PolicyBackoff time.Duration

	// PingInterval is how often the client pings the gateway to find a
	// dead connection (25s; negative never). A ping unanswered within
	// AckTimeout drops the connection, and the client reconnects.
	PingInterval time.Duration

	// HTTPClient makes the handshakes (http.DefaultClient): set it for a
	// proxy, TLS settings or a custom dialer.
	HTTPClient *http.Client
	// Header is added to each handshake.
	Header http.Header

	// OnError receives `error` frames that answer no waiting command: a
	// location refused (Location sends no id) or a frame the gateway could
	// not read. It must not block.
	OnError func(*Error)
	// OnConnect is called after each handshake, with the connection's
	// number (1 for the first) and the seq it resumed after (-1: live).
	// It must not block.
	OnConnect func(n int, afterSeq int64)
	// Logger receives reconnects and their reasons (discarded when nil).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.Buffer <= 0 {
		o.Buffer = 64
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	def(&o.AckTimeout, 15*time.Second)
	def(&o.MinBackoff, 250*time.Millisecond)
	def(&o.MaxBackoff, 30*time.Second)
	def(&o.PolicyBackoff, 5*time.Second)
	def(&o.PingInterval, 25*time.Second)
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Push is one push from the gateway: exactly one of Offer, Trip,
// DriverLocation and Resync is set, as Type says. A push type this client
// does not know (the contract may add some) has only Type, Seq and Raw.
type Push struct {
	Type string
	// Seq is the per-user push counter. Pushes arrive with Seq one more
	// than the last, except after a Resync, whose Seq starts the count
	// again (it may be lower: see Resync).
	Seq            int64
	Offer          *protocol.OfferMessage
	Trip           *protocol.TripMessage
	DriverLocation *protocol.DriverLocationMessage
	// Resync says the pushes since the last one delivered could not be
	// replayed (no longer retained, or the resume point was unknown to the
	// gateway): Resync.Trip is the user's current trip (nil for none).
	// Replace what the app knows of its trip with it.
	Resync *protocol.ResyncMessage
	// Raw is the frame as received.
	Raw json.RawMessage
}

// Client is one user's connection to the gateway, kept up across drops.
// Its methods are safe for concurrent use.
type Client struct {
	url     string
	opts    Options
	pushes  chan Push
	ctx     context.Context // ends at Close or when the client stops
	cancel  context.CancelFunc
	done    chan struct{} // closed when the client has stopped
	idBase  string
	idCount atomic.Uint64
	lastSeq atomic.Int64

	mu      sync.Mutex
	token   string
	cur     *conn         // nil while disconnected
	up      chan struct{} // closed while cur != nil
	err     error         // why the client stopped
	closing bool
	pending map[string]chan protocol.Answer
}

// conn is one WebSocket connection.
type conn struct {
	ws   *websocket.Conn
	n    int
	lost chan struct{} // closed when its reading ends
}

// Dial connects to the gateway at url (ws://host:port/v1/ws; an http://
// or bare host address gets that path) as the user token names, and keeps
// the connection up until Close, or until the gateway ends it for good
// (4008, or 4001 without Options.Token). ctx bounds only this first
// connection: a refused handshake (a *Error: ErrUnauthorized,
// ErrRateLimited) or a network error is returned, not retried.
func Dial(ctx context.Context, url string, token string, opts Options) (*Client, error) {
	u, err := wsURL(url)
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	var b [6]byte
	crand.Read(b[:])
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{url: u, opts: opts, pushes: make(chan Push, opts.Buffer), ctx: cctx, cancel: cancel,
		done: make(chan struct{}), idBase: "c" + hex.EncodeToString(b[:]) + "-", token: token,
		up: make(chan struct{}), pending: map[string]chan protocol.Answer{}}
	if token == "" && opts.Token != nil {
		if c.token, err = opts.Token(ctx); err != nil {
			cancel()
			return nil, fmt.Errorf("hexride client: token: %w", err)
		}
	}
	after := int64(-1)
	if opts.AfterSeq > 0 {
		after = opts.AfterSeq
		c.lastSeq.Store(opts.AfterSeq)
	} else {
		c.lastSeq.Store(-1) // nothing delivered yet
	}
	ws, _, err := c.handshake(ctx, after)
	if err != nil {
		cancel()
		return nil, err
	}
	c.opts.onConnect(1, after)
	go c.run(ws)
	return c, nil
}

// onConnect calls OnConnect if set.
func (o *Options) onConnect(n int, after int64) {
	if o.OnConnect != nil {
		o.OnConnect(n, after)
	}
}

func wsURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "ws://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("hexride client: url: %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("hexride client: url %q: want ws://, wss://, http:// or https://", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/ws"
	}
	return u.String(), nil
}

// Pushes delivers the user's pushes in seq order, none twice and none
// missing across reconnects (a Resync marks where a gap could not be
// filled). It is closed when the client stops. Take from it promptly: see
// Options.Buffer.
func (c *Client) Pushes() <-chan Push { return c.pushes }

// Done is closed when the client has stopped (Close, or a close it does not
// recover from); Err says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the client stopped: ErrClosed, ErrReplaced, ErrTokenExpired,
// ErrUnauthorized, or nil while it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// LastSeq is the seq of the last push delivered to Pushes (the Options.AfterSeq
// given, or -1 before any): what to keep to resume after a restart.
func (c *Client) LastSeq() int64 { return c.lastSeq.Load() }

// Close ends the connection (status 1000) and stops the client: waiting
// calls return ErrClosed and Pushes is closed.
func (c *Client) Close() error {
	c.stop(ErrClosed, true)
	<-c.done
	return nil
}

// stop records why the client ends (the first reason wins) and ends it;
// with goodbye, the current connection gets a close handshake (1000) first.
func (c *Client) stop(why error, goodbye bool) {
	c.mu.Lock()
	if c.err == nil {
		c.err = why
	}
	c.closing = true
	cur := c.cur
	c.mu.Unlock()
	if cur != nil && goodbye {
		cur.ws.Close(websocket.StatusNormalClosure, "")
	}
	c.cancel()
}

// DropConnection cuts the current connection without a close handshake, as
// a lost network would; the client reconnects and resumes. For tests and
// for apps that know the network changed.
func (c *Client) DropConnection() {
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	if cur != nil {
		cur.ws.CloseNow()
	}
}

// handshake opens one connection, resuming after after (unless -1).
func (c *Client) handshake(ctx context.Context, after int64) (*websocket.Conn, time.Duration, error) {
	u := c.url
	if after >= 0 {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "after_seq=" + strconv.FormatInt(after, 10)
	}
	h := http.Header{}
	for k, v := range c.opts.Header {
		h[k] = v
	}
	c.mu.Lock()
	h.Set("Authorization", "Bearer "+c.token)
	c.mu.Unlock()
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.opts.HTTPClient, HTTPHeader: h})
	if err == nil {
		ws.SetReadLimit(1 << 20) // map frames aside, pushes are small; be generous
		return ws, 0, nil
	}
	if resp == nil || resp.StatusCode == http.StatusSwitchingProtocols {
		return nil, 0, fmt.Errorf("hexride client: connect: %w", err)
	}
	// A refusal: {"error":"...","message":"..."}.
	var body struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if resp.Body != nil {
		b, _ := io.ReadAll(resp.Body)
		json.Unmarshal(b, &body)
	}
	e := &Error{Code: body.Error, Message: body.Message}
	if e.Code == "" {
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			e.Code = CodeUnauthorized
		case http.StatusTooManyRequests:
			e.Code = protocol.CodeRateLimited
		case http.StatusBadRequest:
			e.Code = protocol.CodeBadRequest
		default:
			e.Code = protocol.CodeUnavailable
		}
	}
	if e.Message == "" {
		e.Message = resp.Status
	}
	var wait time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		wait = time.Duration(s) * time.Second
	}
	return nil, wait, e
}

// run reads the connection, and reconnects whenever it ends, until the
// client stops.
func (c *Client) run(ws *websocket.Conn) {
	defer close(c.done)
	defer close(c.pushes)
	defer c.cancel()
	n, failures := 1, 0
	for {
		cn := &conn{ws: ws, n: n, lost: make(chan struct{})}
		started := time.Now()
		err := c.serve(cn)
		if c.ctx.Err() != nil {
			return
		}
		if time.Since(started) > c.opts.MaxBackoff/2 || time.Since(started) > 10*time.Second {
			failures = 0 // it lasted: start the back-off again
		}
		status := websocket.CloseStatus(err)
		var minWait time.Duration
		refresh := false
		switch status {
		case protocol.CloseReplaced:
			c.stop(ErrReplaced, false)
			return
		case protocol.CloseTokenExpired:
			if c.opts.Token == nil {
				c.stop(ErrTokenExpired, false)
				return
			}
			refresh = true
		case protocol.ClosePolicyViolation:
			minWait = c.opts.PolicyBackoff
		}
		c.opts.Logger.Info("hexride client: connection lost; reconnecting", "status", int(status), "err", err)
		// Reconnect until a handshake succeeds or the client stops.
		for {
			if failures > 0 || minWait > 0 {
				if !c.sleep(max(c.backoff(failures), minWait)) {
					return
				}
			}
			failures++
			minWait = 0
			if refresh {
				tok, err := c.opts.Token(c.ctx)
				if err != nil {
					c.opts.Logger.Warn("hexride client: token callback failed", "err", err)
					continue
				}
				c.mu.Lock()
				c.token = tok
				c.mu.Unlock()
			}
			after := c.lastSeq.Load()
			if after < 0 {
				after = 0 // nothing delivered yet: everything retained
			}
			var wait time.Duration
			ws, wait, err = c.handshake(c.ctx, after)
			if err == nil {
				n++
				c.opts.onConnect(n, after)
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			c.opts.Logger.Info("hexride client: reconnect failed", "err", err)
			switch {
			case errors.Is(err, ErrUnauthorized):
				if c.opts.Token == nil || refresh {
					c.stop(err, false)
					return
				}
				refresh = true // one fresh token; a second refusal ends it
				continue
			case errors.Is(err, ErrRateLimited):
				minWait = max(wait, c.opts.PolicyBackoff)
			case errors.Is(err, ErrBadRequest):
				c.stop(err, false) // a resume point the gateway will never take
				return
			}
			refresh = false
		}
	}
}

// sleep waits d or until the client stops (false).
func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// backoff is the wait before reconnect attempt failures+1: doubling from
// MinBackoff up to MaxBackoff, times a random factor in [0.5, 1.5).
func (c *Client) backoff(failures int) time.Duration {
	d := c.opts.MinBackoff
	for i := 1; i < failures && d < c.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.opts.MaxBackoff)
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

// serve makes cn the current connection, reads it until it ends and
// returns why.
func (c *Client) serve(cn *conn) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		cn.ws.CloseNow()
		return ErrClosed
	}
	c.cur = cn
	close(c.up)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.cur = nil
		c.up = make(chan struct{})
		c.mu.Unlock()
		close(cn.lost)
		cn.ws.CloseNow()
	}()
	if c.opts.PingInterval > 0 {
		go c.pinger(cn)
	}
	for {
		_, b, err := cn.ws.Read(c.ctx)
		if err != nil {
			return err
		}
		var f protocol.ServerFrame
		if err := json.Unmarshal(b, &f); err != nil {
			c.opts.Logger.Warn("hexride client: frame is not JSON", "frame", string(b))
			continue
		}
		switch {
		case f.Type == protocol.MsgAck || f.Type == protocol.MsgError:
			c.answer(protocol.Answer{Type: f.Type, ID: f.ID, TripID: f.TripID, Code: f.Code, Message: f.Message})
		case f.Seq > 0:
			if err := c.deliver(f, b); err != nil {
				cn.ws.Close(websocket.StatusNormalClosure, "resuming")
				return err
			}
		}
		// Other frames (map.* are a viewer's) are not a phone's concern.
	}
}

// errGap ends a connection whose pushes skipped a seq: the client resumes
// after the last one delivered, and the gateway replays the rest.
var errGap = errors.New("hexride client: a push skipped a seq; resuming")

// deliver hands a push to the app in seq order: a seq already delivered is
// dropped, a seq past the next ends the connection to resume (errGap).
func (c *Client) deliver(f protocol.ServerFrame, raw []byte) error {
	last := c.lastSeq.Load()
	if f.Type != protocol.PushResync && last >= 0 {
		if f.Seq <= last {
			return nil // a replayed copy
		}
		if f.Seq > last+1 {
			c.opts.Logger.Info("hexride client: gap in pushes", "last", last, "got", f.Seq)
			return errGap
		}
	}
	p := Push{Type: f.Type, Seq: f.Seq, Raw: append(json.RawMessage(nil), raw...)}
	var err error
	switch f.Type {
	case protocol.PushOffer:
		p.Offer = new(protocol.OfferMessage)
		err = json.Unmarshal(raw, p.Offer)
	case protocol.PushTrip:
		p.Trip = new(protocol.TripMessage)
		err = json.Unmarshal(raw, p.Trip)
	case protocol.PushDriverLocation:
		p.DriverLocation = new(protocol.DriverLocationMessage)
		err = json.Unmarshal(raw, p.DriverLocation)
	case protocol.PushResync:
		p.Resync = new(protocol.ResyncMessage)
		err = json.Unmarshal(raw, p.Resync)
	}
	if err != nil {
		c.opts.Logger.Warn("hexride client: push does not decode", "err", err, "frame", string(raw))
	}
	// Counted before it is handed over, so LastSeq already says so when
	// the app has it; taken back if the client stops first.
	c.lastSeq.Store(f.Seq)
	select {
	case c.pushes <- p:
		return nil
	case <-c.ctx.Done():
		c.lastSeq.Store(last)
		return ErrClosed
	}
}

// pinger pings cn until it ends, and cuts it when a ping goes unanswered.
func (c *Client) pinger(cn *conn) {
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-cn.lost:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(c.ctx, c.opts.AckTimeout)
			err := cn.ws.Ping(ctx)
			cancel()
			if err != nil {
				select {
				case <-cn.lost:
				default:
					c.opts.Logger.Info("hexride client: ping unanswered; reconnecting", "err", err)
				}
				cn.ws.CloseNow()
				return
			}
		}
	}
}

// answer routes an ack or error to the command waiting for it.
func (c *Client) answer(a protocol.Answer) {
	c.mu.Lock()
	ch := c.pending[a.ID]
	c.mu.Unlock()
	if ch != nil && a.ID != "" {
		select {
		case ch <- a:
		default: // an answer to an earlier attempt is already there
		}
		return
	}
	if a.Type == protocol.MsgError && c.opts.OnError != nil {
		c.opts.OnError(&Error{Code: a.Code, Message: a.Message})
	}
}

// current waits for a connection.
func (c *Client) current(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		cur, up, err := c.cur, c.up, c.err
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if cur != nil {
			return cur, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
		}
	}
}

// write sends one frame on cn. The write's context is the client's, not
// the caller's: a write cut short by a caller's deadline would close the
// whole connection.
func (c *Client) write(cn *conn, b []byte) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.AckTimeout)
	defer cancel()
	return cn.ws.Write(ctx, websocket.MessageText, b)
}

// newID returns a command id unique to this client (at most 32 bytes).
func (c *Client) newID() string {
	return c.idBase + strconv.FormatUint(c.idCount.Add(1), 10)
}
