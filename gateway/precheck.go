package gateway

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hexride/hexride/ride"
)

// precheck answers, before anything is published, a command that cannot
// succeed: the trip does not exist (not_found), is not the sender's
// (forbidden), or is not in a state that allows it (conflict). Tripstate
// decides again when it applies the command, so a race between two phones is
// still settled once, there.
func (s *Server) precheck(ctx context.Context, sess *session, f Frame) *ProtocolError {
	unavailable := &ProtocolError{Code: CodeUnavailable, Message: "trip state unavailable; safe to retry"}
	if f.Type == MsgRideRequest {
		t, ok, err := s.trips.CurrentTrip(ctx, sess.user, sess.role)
		if err != nil {
			s.log.Warn("precheck current trip", "user", sess.user, "err", err)
			return unavailable
		}
		if ok && !ride.Terminal(t.State) {
			return &ProtocolError{Code: CodeConflict, Message: fmt.Sprintf("you already have an active trip %s", t.TripID)}
		}
		return nil
	}
	t, ok, err := s.trips.Trip(ctx, f.TripID)
	if err != nil {
		s.log.Warn("precheck trip", "trip", f.TripID, "err", err)
		return unavailable
	}
	if !ok {
		return &ProtocolError{Code: CodeNotFound, Message: fmt.Sprintf("no trip %s", f.TripID)}
	}
	forbidden := &ProtocolError{Code: CodeForbidden, Message: fmt.Sprintf("trip %s is not yours", f.TripID)}
	switch f.Type {
	case MsgOfferAccept, MsgOfferDecline:
		if !slices.Contains(t.Offered, sess.user) {
			return forbidden
		}
		if t.Offer == nil || t.Offer.OfferID != f.OfferID || t.Offer.DriverID != sess.user {
			return &ProtocolError{Code: CodeConflict, Message: fmt.Sprintf("offer %s is no longer open", f.OfferID)}
		}
		if f.Type == MsgOfferAccept && time.Now().After(t.Offer.ExpiresAt) {
			return &ProtocolError{Code: CodeConflict, Message: fmt.Sprintf("offer %s expired", f.OfferID)}
		}
		return nil
	}
	// The offered driver is a party to the trip too: a command sent before
	// the acceptance was applied is early (conflict), not someone else's.
	party := sess.user == t.DriverID || (t.Offer != nil && t.Offer.DriverID == sess.user)
	if f.Type == MsgTripCancel {
		party = party || sess.user == t.RiderID
	}
	if !party {
		return forbidden
	}
	if !s.trips.Legal(t.State, f.Type) {
		return &ProtocolError{Code: CodeConflict, Message: fmt.Sprintf("cannot %s a trip that is %s", f.Type, t.State)}
	}
	return nil
}
