package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/hexride/hexride/livemap"
	"github.com/hexride/hexride/protocol"
)

// serveViewer runs a viewer's socket: map frames out at the hub's rate,
// map.inspect in. A viewer has no pushes and no seq: what it sees is a view
// of now, so a reconnect simply starts with a fresh snapshot.
//
// The writer waits on the viewer's one-frame mailbox. If the socket is slow,
// the hub replaces the unsent frame with a newer snapshot; nothing upstream
// ever waits for a viewer.
func (s *Server) serveViewer(w http.ResponseWriter, r *http.Request, claims Claims) {
	c, release, ok := s.upgrade(w, r, false)
	if !ok {
		return
	}
	defer release()
	connectionsGauge.WithLabelValues(protocol.RoleViewer).Inc()
	defer connectionsGauge.WithLabelValues(protocol.RoleViewer).Dec()

	ctx, cancel := context.WithCancel(s.sessions.ctx)
	defer cancel()
	defer closeAtExpiry(claims, s.cfg.TokenGrace, func() { go c.Close(protocol.CloseTokenExpired, "token expired; reconnect with a fresh token") })()
	var frames *livemap.Viewer
	if s.cfg.LiveMap != nil {
		frames = s.cfg.LiveMap.Subscribe()
		defer frames.Close()
	}
	// Answers to map.inspect: a viewer that floods inspects and does not
	// read them is disconnected, as a phone would be.
	answers := make(chan []byte, 16)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		defer cancel()
		var ready <-chan struct{}
		if frames != nil {
			ready = frames.Ready()
		}
		for {
			var b []byte
			select {
			case <-ctx.Done():
				return
			case b = <-answers:
			case <-ready:
				if b = frames.Take(); b == nil {
					continue
				}
			}
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.Write(wctx, websocket.MessageText, b)
			wcancel()
			if err != nil {
				return
			}
		}
	}()

	send := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			s.log.Error("encode viewer answer", "err", err)
			return
		}
		select {
		case answers <- b:
		default:
			cancel()
		}
	}
	sendErr := func(id string, pe *protocol.Error) {
		errorsTotal.WithLabelValues(pe.Code).Inc()
		send(protocol.Answer{Type: protocol.MsgError, ID: id, Code: pe.Code, Message: pe.Message})
	}

	limiter := rate.NewLimiter(rate.Limit(s.cfg.RatePerSec), s.cfg.Burst)
	status, reason := websocket.StatusNormalClosure, ""
	strikes := strikes{max: s.cfg.Burst}
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == -1 && ctx.Err() != nil && s.sessions.ctx.Err() == nil {
				status, reason = websocket.StatusTryAgainLater, "too slow to read answers; reconnect"
			}
			break
		}
		if !limiter.Allow() {
			framesTotal.WithLabelValues("rate_limited").Inc()
			if strikes.add() {
				status, reason = websocket.StatusPolicyViolation, "rate limit exceeded"
				break
			}
			f, _ := DecodeFrame(data)
			sendErr(f.ID, &protocol.Error{Code: protocol.CodeRateLimited, Message: "too many messages; slow down"})
			continue
		}
		if typ != websocket.MessageText {
			sendErr("", badRequest("frames must be text"))
			continue
		}
		f, perr := DecodeFrame(data)
		if perr != nil {
			framesTotal.WithLabelValues("invalid").Inc()
			sendErr(f.ID, perr)
			continue
		}
		framesTotal.WithLabelValues(f.Type).Inc()
		if perr := Authorize(claims.Role, f); perr != nil {
			sendErr(f.ID, perr)
			continue
		}
		// map.inspect is the only command a viewer may send.
		if s.cfg.LiveMap == nil {
			sendErr(f.ID, &protocol.Error{Code: protocol.CodeUnavailable, Message: "this gateway serves no live map"})
			continue
		}
		d, err := s.cfg.LiveMap.Aggregator().Inspect(f.Kind, *f.Slot)
		if err != nil {
			code := protocol.CodeBadRequest
			if errors.Is(err, livemap.ErrNotOnMap) {
				code = protocol.CodeNotFound
			}
			sendErr(f.ID, &protocol.Error{Code: code, Message: fmt.Sprint(err)})
			continue
		}
		d.ID = f.ID
		send(d)
	}
	cancel()
	<-writerDone
	c.Close(status, reason)
}
