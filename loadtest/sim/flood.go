package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/coder/websocket"

	"github.com/hexride/hexride/protocol"
)

// Flood kinds: what an abusive client does while legitimate riders ride.
const (
	FloodNone      = "none"      // a quiet run, the figure the others are held to
	FloodUser      = "user"      // one user on many sockets sends commands as fast as it can
	FloodSockets   = "sockets"   // one IP opens as many sockets as it can and holds them
	FloodReconnect = "reconnect" // one user floods past its limit, is closed, and reconnects at once, again and again
)

// floodRate is the frames a second each flood socket sends: fifty times a
// socket's limit.
const floodRate = 1000

// FloodKinds lists every kind, quiet first.
var FloodKinds = []string{FloodNone, FloodUser, FloodSockets, FloodReconnect}

// FloodConfig is a run that measures legitimate riders' acks while one
// client floods the target.
type FloodConfig struct {
	// Target is the platform's base URL, loopback only.
	Target string
	Kind   string
	// Riders is how many legitimate riders request and cancel rides, each
	// as often as its own budget allows (default 20).
	Riders int
	// Duration is how long the riders ride and the flood floods (20s).
	Duration time.Duration
	// Sockets is how many sockets the flood opens: the user's (default 8)
	// or the IP's (default 1000).
	Sockets int
	// FloodAddr is the local address the flood connects from (default
	// 127.0.0.2), so that a per-IP limit meets the flood and not the
	// riders, who connect from 127.0.0.1.
	FloodAddr string
	IDPrefix  string
}

// FloodReport is what the riders saw and what the flood got.
type FloodReport struct {
	Kind      string  `json:"kind"`
	Riders    int     `json:"riders"`
	DurationS float64 `json:"duration_seconds"`
	// Acks are the riders' acknowledged commands and their latency.
	Acks       int            `json:"rider_acks"`
	AckP50Ms   float64        `json:"rider_ack_p50_ms"`
	AckP99Ms   float64        `json:"rider_ack_p99_ms"`
	AckMaxMs   float64        `json:"rider_ack_max_ms"`
	RiderError map[string]int `json:"rider_errors,omitempty"`
	// The flood's side: what it sent, what was acked, and each refusal
	// (error codes, HTTP statuses of refused handshakes, close codes).
	FloodSent    int            `json:"flood_sent"`
	FloodAcked   int            `json:"flood_acked"`
	FloodSockets int            `json:"flood_sockets_open"`
	Refused      map[string]int `json:"flood_refused,omitempty"`
}

func (c FloodConfig) withDefaults() FloodConfig {
	if c.Riders <= 0 {
		c.Riders = 20
	}
	if c.Duration <= 0 {
		c.Duration = 20 * time.Second
	}
	if c.Sockets <= 0 {
		c.Sockets = 8
		if c.Kind == FloodSockets {
			c.Sockets = 1000
		}
	}
	if c.FloodAddr == "" {
		c.FloodAddr = "127.0.0.2"
	}
	if c.IDPrefix == "" {
		c.IDPrefix = "fl" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	}
	return c
}

// counts is a concurrent tally.
type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counts) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[k]++
}

func (c *counts) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m
}

// Flood runs cfg.Riders legitimate riders against cfg.Target while a client
// floods it the cfg.Kind way, and reports the riders' ack latency and what
// the flood got through.
func Flood(ctx context.Context, cfg FloodConfig) (*FloodReport, error) {
	base, err := CheckTarget(cfg.Target)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if !slices.Contains(FloodKinds, cfg.Kind) {
		return nil, fmt.Errorf("flood kind %q: want one of %v", cfg.Kind, FloodKinds)
	}
	r := newRunner(ctx, Config{Target: cfg.Target, IDPrefix: cfg.IDPrefix, Connecting: 64}, base)
	defer r.http.CloseIdleConnections()
	if err := r.probe(ctx); err != nil {
		return nil, err
	}
	floodDialer := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(cfg.FloodAddr)}}
	floodHTTP := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: floodDialer.DialContext, DisableKeepAlives: true}}

	rep := &FloodReport{Kind: cfg.Kind, Riders: cfg.Riders, DurationS: cfg.Duration.Seconds()}
	var lat []time.Duration
	var latMu sync.Mutex
	var riderErr, refused counts
	var sent, acked, open atomic.Int64

	runCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	var wg sync.WaitGroup
	floodErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		f := flooder{r: r, cfg: cfg, client: floodHTTP, sent: &sent, acked: &acked, open: &open, refused: &refused}
		floodErr <- f.run(runCtx)
	}()
	riderTokens := make([]string, cfg.Riders)
	for i := range riderTokens {
		if riderTokens[i], err = r.token(ctx, protocol.RoleRider, fmt.Sprintf("%s-r%d", cfg.IDPrefix, i)); err != nil {
			stop()
			wg.Wait()
			return nil, err
		}
	}
	for i := range cfg.Riders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := r.dialWS(runCtx, r.wsURL, riderTokens[i])
			if err != nil {
				riderErr.add("dial")
				return
			}
			defer c.CloseNow()
			rider := floodRider{c: c, id: fmt.Sprintf("r%d", i)}
			rider.ride(runCtx, func(d time.Duration) {
				latMu.Lock()
				lat = append(lat, d)
				latMu.Unlock()
			}, riderErr.add)
		}()
	}
	wg.Wait()
	if err := <-floodErr; err != nil {
		return nil, err
	}
	slices.Sort(lat)
	rep.Acks = len(lat)
	if n := len(lat); n > 0 {
		at := func(q float64) float64 { return float64(lat[min(n-1, int(q*float64(n)))]) / 1e6 }
		rep.AckP50Ms, rep.AckP99Ms, rep.AckMaxMs = at(0.50), at(0.99), float64(lat[n-1])/1e6
	}
	rep.RiderError, rep.Refused = riderErr.snapshot(), refused.snapshot()
	rep.FloodSent, rep.FloodAcked, rep.FloodSockets = int(sent.Load()), int(acked.Load()), int(open.Load())
	return rep, nil
}

// floodRider requests a ride, cancels it, and waits as long as a rider's
// request budget asks (one every 2 s), until ctx ends.
type floodRider struct {
	c  *websocket.Conn
	id string
	n  int
}

func (f *floodRider) ride(ctx context.Context, ack func(time.Duration), fail func(string)) {
	for ctx.Err() == nil {
		start := time.Now()
		res, err := f.command(ctx, map[string]any{"type": protocol.MsgRideRequest,
			"pickup": map[string]float64{"lat": 37.7749, "lng": -122.4194}, "dropoff": map[string]float64{"lat": 37.7849, "lng": -122.4094}})
		if err != nil {
			return
		}
		if res.Type != protocol.MsgAck {
			fail(res.Code)
		} else {
			ack(time.Since(start))
			// Cancelled once tripstate has it: before, the gateway
			// rightly answers not_found.
			if err := f.await(ctx, res.TripID, protocol.StateRequested); err != nil {
				return
			}
			start = time.Now()
			res, err = f.command(ctx, map[string]any{"type": protocol.MsgTripCancel, "trip_id": res.TripID})
			if err != nil {
				return
			}
			if res.Type != protocol.MsgAck {
				fail(res.Code)
			} else {
				ack(time.Since(start))
			}
		}
		if !sleepCtx(ctx, 2*time.Second) {
			return
		}
	}
}

// await reads frames until the trip push of tripID in state.
func (f *floodRider) await(ctx context.Context, tripID, state string) error {
	for {
		_, data, err := f.c.Read(ctx)
		if err != nil {
			return err
		}
		var sf protocol.ServerFrame
		if json.Unmarshal(data, &sf) == nil && sf.Type == protocol.PushTrip && sf.TripID == tripID && sf.State == state {
			return nil
		}
	}
}

// command sends one command and waits for its answer, skipping pushes.
func (f *floodRider) command(ctx context.Context, msg map[string]any) (protocol.ServerFrame, error) {
	f.n++
	id := fmt.Sprintf("%s-%d", f.id, f.n)
	msg["id"] = id
	b, _ := json.Marshal(msg)
	if err := f.c.Write(ctx, websocket.MessageText, b); err != nil {
		return protocol.ServerFrame{}, err
	}
	for {
		_, data, err := f.c.Read(ctx)
		if err != nil {
			return protocol.ServerFrame{}, err
		}
		var sf protocol.ServerFrame
		if json.Unmarshal(data, &sf) == nil && sf.ID == id {
			return sf, nil
		}
	}
}

// flooder is the abusive client.
type flooder struct {
	r                 *runner
	cfg               FloodConfig
	client            *http.Client
	sent, acked, open *atomic.Int64
	refused           *counts
}

func (f *flooder) run(ctx context.Context) error {
	switch f.cfg.Kind {
	case FloodNone:
		<-ctx.Done()
		return nil
	case FloodSockets:
		return f.sockets(ctx)
	}
	tok, err := f.r.token(ctx, protocol.RoleDriver, f.cfg.IDPrefix+"-flood")
	if err != nil {
		return err
	}
	n := f.cfg.Sockets
	if f.cfg.Kind == FloodReconnect {
		n = 1
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				f.blast(ctx, tok, i)
				if f.cfg.Kind == FloodUser {
					return // its sockets stay closed once closed
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// dial opens a flood socket, counting a refused handshake by its status.
func (f *flooder) dial(ctx context.Context, tok string) *websocket.Conn {
	c, res, err := websocket.Dial(ctx, f.r.wsURL, &websocket.DialOptions{HTTPClient: f.client,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		if res != nil {
			f.refused.add("http_" + strconv.Itoa(res.StatusCode))
		} else if ctx.Err() == nil {
			f.refused.add("dial_error")
		}
		return nil
	}
	f.open.Add(1)
	return c
}

// blast sends availability commands as fast as the socket takes them and
// tallies the answers, until the socket is closed or ctx ends.
func (f *flooder) blast(ctx context.Context, tok string, socket int) {
	c := f.dial(ctx, tok)
	if c == nil {
		sleepCtx(ctx, 50*time.Millisecond)
		return
	}
	defer c.CloseNow()
	var closed sync.Once
	closedWith := func(err error) {
		if st := websocket.CloseStatus(err); st != -1 {
			closed.Do(func() { f.refused.add("close_" + strconv.Itoa(int(st))) })
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				closedWith(err)
				return
			}
			var sf protocol.ServerFrame
			if json.Unmarshal(data, &sf) != nil {
				continue
			}
			switch sf.Type {
			case protocol.MsgAck:
				f.acked.Add(1)
			case protocol.MsgError:
				f.refused.add(sf.Code)
			}
		}
	}()
	// Paced at floodRate: the flood shares the machine with the riders
	// and the platform, and a client writing as fast as it can would
	// measure its own CPU, not what the gateway lets it cost.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		if i%(floodRate/100) == 0 {
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
		// The user flood sends commands, each answered, so what got
		// through is counted in acks; the reconnecting one pings (no id,
		// no answer unless refused), which the gateway reads as fast as
		// they come, so its limits and not the log's pace meet it.
		b := fmt.Appendf(nil, `{"type":"availability","id":"f%d-%d","available":%t}`, socket, i, i%2 == 0)
		if f.cfg.Kind == FloodReconnect {
			b = fmt.Appendf(b[:0], `{"type":"location","lat":%.5f,"lng":-122.4194}`, 37.7749+float64(i%100)/1e5)
		}
		if err := c.Write(ctx, websocket.MessageText, b); err != nil {
			closedWith(err)
			break
		}
		f.sent.Add(1)
	}
	<-done
}

// sockets opens as many sockets, of as many users, as it can and holds
// them until ctx ends.
func (f *flooder) sockets(ctx context.Context) error {
	var conns []*websocket.Conn
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	for i := 0; i < f.cfg.Sockets && ctx.Err() == nil; i++ {
		tok, err := f.r.token(ctx, protocol.RoleDriver, fmt.Sprintf("%s-s%d", f.cfg.IDPrefix, i))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
		if c := f.dial(ctx, tok); c != nil {
			conns = append(conns, c)
		}
	}
	<-ctx.Done()
	return nil
}

// WriteTable writes reports side by side.
func WriteFloodTable(w io.Writer, reps ...*FloodReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "flood\trider acks\tack p50 ms\tack p99 ms\tmax ms\tflood sent\tflood acked\tflood sockets\trefused\t")
	for _, r := range reps {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t%v\t\n", r.Kind, r.Acks, r.AckP50Ms, r.AckP99Ms, r.AckMaxMs,
			r.FloodSent, r.FloodAcked, r.FloodSockets, r.Refused)
	}
	return tw.Flush()
}
