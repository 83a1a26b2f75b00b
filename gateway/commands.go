package gateway

// From a frame to an event: the read loop, each frame's handling, and the
// commands, remembered by id so a resend is answered the same.

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// readLoop handles frames until the socket closes; it returns the close
// status to send.
func (s *Server) readLoop(ctx context.Context, c *websocket.Conn, sess *session) (websocket.StatusCode, string) {
	limiter := rate.NewLimiter(rate.Limit(s.cfg.RatePerSec), s.cfg.Burst)
	strikes := strikes{max: s.cfg.Burst}
	for {
		// The read needs no context: a socket's read ends when its
		// connection closes (the peer leaves, the close handshake ends,
		// or Close cuts it). coder/websocket registers a context.AfterFunc
		// on a cancellable context for every read, and with every socket
		// sharing the server's that was 6% of the CPU at 15,000 pings/s.
		typ, buf, err := readFrame(context.Background(), c)
		if err != nil {
			// The peer left, or the socket is already being closed (too
			// slow, shutting down) with its own status.
			return websocket.StatusNormalClosure, ""
		}
		switch {
		case !limiter.Allow():
			framesTotal.WithLabelValues("rate_limited").Inc()
			refused(refusedSocketRate)
			if strikes.add() {
				frameBuffers.Put(buf)
				return websocket.StatusPolicyViolation, "rate limit exceeded"
			}
			f, _ := DecodeFrame(*buf)
			s.sendError(sess, f.ID, &protocol.Error{Code: protocol.CodeRateLimited, Message: "too many messages; slow down"})
		case typ != websocket.MessageText:
			s.sendError(sess, "", badRequest("frames must be text"))
		default:
			// A frame past the user's budget (across its sockets and the
			// replicas) is a strike like one past the socket's own.
			if !s.handleFrame(ctx, sess, *buf) && strikes.add() {
				frameBuffers.Put(buf)
				return websocket.StatusPolicyViolation, "rate limit exceeded"
			}
		}
		// Nothing keeps the frame's bytes: decoding copies what it reads.
		frameBuffers.Put(buf)
	}
}

// strikeWindow is how long a socket's refused frames count against it.
const strikeWindow = 10 * time.Second

// strikes counts a socket's frames refused for exceeding a rate over
// strikeWindow: more than max there close it for abuse (1008), however many
// frames got through in between. Counting them in a row instead let a
// flood through: its budget refilling twenty times a second reset the count
// twenty times a second, and a socket sending thousands of frames a second
// was never closed (loadtest -flood user).
type strikes struct {
	n, max int
	since  time.Time
}

// add counts a refused frame and reports whether that makes too many.
func (s *strikes) add() bool {
	now := time.Now()
	if now.Sub(s.since) > strikeWindow {
		s.n, s.since = 0, now
	}
	s.n++
	return s.n > s.max
}

func (s *Server) sendError(sess *session, id string, pe *protocol.Error) {
	errorsTotal.WithLabelValues(pe.Code).Inc()
	sess.answer(protocol.Answer{Type: protocol.MsgError, ID: id, Code: pe.Code, Message: pe.Message})
}

// handleFrame turns one frame into an event, or into an error that changes
// nothing. It returns false if the frame was past its user's budget.
func (s *Server) handleFrame(ctx context.Context, sess *session, data []byte) bool {
	f, perr := DecodeFrame(data)
	if perr != nil {
		framesTotal.WithLabelValues("invalid").Inc()
		s.sendError(sess, f.ID, perr)
		return true
	}
	framesTotal.WithLabelValues(f.Type).Inc()
	if perr := Authorize(sess.role, f); perr != nil {
		s.sendError(sess, f.ID, perr)
		return true
	}
	if !s.spend(ctx, sess, f.Type) {
		framesTotal.WithLabelValues("rate_limited").Inc()
		s.sendError(sess, f.ID, &protocol.Error{Code: protocol.CodeRateLimited, Message: "too many messages for this user; slow down"})
		return false
	}
	now := time.Now()
	switch f.Type {
	case protocol.MsgLocation:
		if perr := checkLocation(&sess.fix, &f, now, s.cfg.MaxSpeedKMH); perr != nil {
			s.sendError(sess, f.ID, perr)
			return true
		}
		pctx, cancel := context.WithTimeout(ctx, publishTimeout)
		defer cancel()
		loc := ride.DriverLocation{DriverID: sess.user, Lat: *f.Lat, Lng: *f.Lng, Heading: f.Heading, SpeedMPS: f.SpeedMPS, At: f.At}
		env, err := ev.New(ev.TypeDriverLocation, sess.user, now, loc)
		if err == nil {
			out := ev.Outgoing{Topic: ev.TopicDriverEvents, Env: env}
			if f.ID == "" {
				// Fire and forget: the reader moves on to the next frame
				// while the ping waits for its batch.
				err = s.pub.Send(pctx, out)
			} else {
				err = s.pub.Publish(pctx, out) // the ack says it is durable
			}
		}
		if err != nil {
			s.log.Warn("publish location", "driver", sess.user, "err", err)
			s.sendError(sess, f.ID, &protocol.Error{Code: protocol.CodeUnavailable, Message: "location not recorded; the event log is unavailable"})
		} else if f.ID != "" {
			sess.answer(protocol.Answer{Type: protocol.MsgAck, ID: f.ID})
		}
		return true
	case protocol.MsgAvailability:
		s.command(ctx, sess, f, func() (ev.Outgoing, string, *protocol.Error) {
			env, err := ev.New(ev.TypeDriverAvailability, sess.user, now, ride.DriverAvailability{DriverID: sess.user, Available: *f.Available})
			return ev.Outgoing{Topic: ev.TopicDriverEvents, Env: env}, "", internalErr(err)
		}, s.recordAvailability)
		return true
	}
	s.command(ctx, sess, f, func() (ev.Outgoing, string, *protocol.Error) {
		if perr := s.precheck(ctx, sess, f); perr != nil {
			return ev.Outgoing{}, "", perr
		}
		cmd := tripCommand(sess, f)
		if f.Type == protocol.MsgRideRequest {
			cmd.TripID = "t-" + ev.NewID()[:20]
			cmd.Pickup, cmd.Dropoff = f.Pickup.LatLng(), f.Dropoff.LatLng()
		}
		env, err := ev.New(f.Type, cmd.TripID, now, cmd)
		return ev.Outgoing{Topic: ev.TopicTripCommands, Env: env}, cmd.TripID, internalErr(err)
	}, nil)
	return true
}

// recordAvailability keeps a published availability change in the durable
// record that views of the drivers are rebuilt from (package supply): the
// change holds until the driver says otherwise, long after its event has
// left the part of the log they re-read.
func (s *Server) recordAvailability(ctx context.Context, out ev.Outgoing) error {
	var a ride.DriverAvailability
	if err := out.Env.DecodePayload(&a); err != nil {
		return err
	}
	return s.supply.Set(ctx, a.DriverID, out.Env.OccurredAt, a.Available)
}

func internalErr(err error) *protocol.Error {
	if err == nil {
		return nil
	}
	return &protocol.Error{Code: protocol.CodeUnavailable, Message: "internal error; safe to retry"}
}

// stored is what the gateway remembers of a command with an id, so a resend
// gets the same answer and re-publishes the same event (same event id, which
// consumers de-duplicate) instead of making a second one.
type stored struct {
	// Type is the frame's type: an availability frame makes a
	// driver.availability event, so the event's type cannot tell a
	// resend from another command under the same id.
	Type   string      `json:"type,omitempty"`
	Out    ev.Outgoing `json:"out"`
	TripID string      `json:"trip_id,omitempty"`
}

const commandMemory = 24 * time.Hour

// publishTimeout bounds how long a frame waits for the event log. A broker
// that is paused or partitioned otherwise holds the phone's whole socket for
// kafka-go's retries (five attempts of up to 10 s); the phone hears
// unavailable instead and resends with the same id, which is safe whether
// or not the event was written after all.
const publishTimeout = 5 * time.Second

// commandKey is a command's memory, under the user key: a driver token
// carrying a rider's sub has a memory of its own.
func commandKey(userKey, id string) string { return "gw-cmd:" + userKey + ":" + id }

// command publishes the event build makes and acks it. With an id, the event
// is remembered first, so that a resend after a lost ack (even after a crash
// mid-publish) re-publishes the very same event and gets the same ack.
// after, if set, runs once the event is durable and before the ack; if it
// fails the phone hears unavailable, and its resend publishes the same
// event again and runs after again.
func (s *Server) command(ctx context.Context, sess *session, f protocol.Frame, build func() (ev.Outgoing, string, *protocol.Error),
	after func(context.Context, ev.Outgoing) error) {
	var st stored
	resend := false
	if f.ID != "" {
		b, err := s.rdb.Get(ctx, commandKey(sess.key, f.ID)).Bytes()
		switch {
		case err == nil:
			if json.Unmarshal(b, &st) == nil && (st.Type == f.Type || st.Type == "" && st.Out.Env.Type == f.Type) {
				resend = true
			} else {
				s.sendError(sess, f.ID, &protocol.Error{Code: protocol.CodeConflict, Message: "this id was already used for a different command"})
				return
			}
		case !errors.Is(err, redis.Nil):
			s.log.Warn("read command memory", "err", err)
			s.sendError(sess, f.ID, &protocol.Error{Code: protocol.CodeUnavailable, Message: "state store unavailable; safe to retry"})
			return
		}
	}
	if !resend {
		out, tripID, perr := build()
		if perr != nil {
			s.sendError(sess, f.ID, perr)
			return
		}
		st = stored{Type: f.Type, Out: out, TripID: tripID}
		if f.ID != "" {
			b, _ := json.Marshal(st)
			ok, err := s.rdb.SetNX(ctx, commandKey(sess.key, f.ID), b, commandMemory).Result()
			if err != nil || !ok {
				s.sendError(sess, f.ID, &protocol.Error{Code: protocol.CodeUnavailable, Message: "could not record the command; safe to retry"})
				return
			}
		}
	}
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if err := s.pub.Publish(pctx, st.Out); err != nil {
		s.log.Warn("publish command", "type", f.Type, "user", sess.key, "err", err)
		// The memory stays: a write that timed out may still land, and the
		// resend must then be the very same event (same id, which tripstate
		// applies once), not a second command.
		s.sendError(sess, f.ID, &protocol.Error{Code: protocol.CodeUnavailable, Message: "the event log could not take it; safe to retry"})
		return
	}
	if after != nil {
		if err := after(pctx, st.Out); err != nil {
			s.log.Warn("after publishing command", "type", f.Type, "user", sess.key, "err", err)
			s.sendError(sess, f.ID, &protocol.Error{Code: protocol.CodeUnavailable, Message: "state store unavailable; safe to retry"})
			return
		}
	}
	if f.ID != "" {
		sess.answer(protocol.Answer{Type: protocol.MsgAck, ID: f.ID, TripID: st.TripID})
	}
}
