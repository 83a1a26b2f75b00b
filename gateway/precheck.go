package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
	"github.com/hexride/hexride/trip"
)

// precheck answers, before anything is published, a command that cannot
// succeed: the trip does not exist (not_found), is not the sender's
// (forbidden), or is not in a state that allows it (conflict). It asks
// trip.Decide, tripstate's own rule book, about the command the frame would
// become, on the trip as stored now. Tripstate decides again when it
// applies the command, so a race between two phones is still settled once,
// there.
func (s *Server) precheck(ctx context.Context, sess *session, f protocol.Frame) *protocol.Error {
	unavailable := &protocol.Error{Code: protocol.CodeUnavailable, Message: "trip state unavailable; safe to retry"}
	if f.Type == protocol.MsgRideRequest {
		t, ok, err := s.trips.CurrentTrip(ctx, sess.user, sess.role)
		if err != nil {
			s.log.Warn("precheck current trip", "user", sess.user, "err", err)
			return unavailable
		}
		if ok && !ride.Terminal(t.State) {
			return &protocol.Error{Code: protocol.CodeConflict, Message: fmt.Sprintf("you already have an active trip %s", t.TripID)}
		}
		return nil
	}
	t, ok, err := s.trips.Trip(ctx, f.TripID)
	if err != nil {
		s.log.Warn("precheck trip", "trip", f.TripID, "err", err)
		return unavailable
	}
	_, err = trip.Decide(t, ok, trip.Command{Type: f.Type, At: time.Now(), TripCommand: tripCommand(sess, f)})
	if err == nil {
		return nil
	}
	var r *trip.Rejection
	if !errors.As(err, &r) {
		// Only a malformed ride.request is refused otherwise, and frames
		// are checked before they get here.
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error()}
	}
	code := protocol.CodeConflict
	switch r.Code {
	case trip.CodeNotFound:
		code = protocol.CodeNotFound
	case trip.CodeForbidden:
		code = protocol.CodeForbidden
	}
	return &protocol.Error{Code: code, Message: r.Reason}
}

// tripCommand is the trip command a phone's frame becomes (a ride.request
// gets its trip id and places where it is published).
func tripCommand(sess *session, f protocol.Frame) ride.TripCommand {
	return ride.TripCommand{TripID: f.TripID, UserID: sess.user, Role: sess.role, OfferID: f.OfferID, Reason: f.Reason}
}
