package trip

import (
	"fmt"
	"slices"
	"time"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/ride"
)

// Command is one trip command as Decide sees it: what the event on
// TopicTripCommands says, and nothing else.
type Command struct {
	Type string    // the event type: ev.TypeRideRequest, ev.TypeOfferAccept, ...
	ID   string    // the event id; the store remembers it to drop copies
	At   time.Time // when it happened: the envelope's OccurredAt
	ride.TripCommand
}

// Transition is a command applied to a trip: the update trip.events carries
// and, unexported, what the store must change with it atomically.
type Transition struct {
	// Update is the next trip, the command that caused it and the offer it
	// closed.
	Update ride.TripUpdated

	eventID  string
	from     int64  // the version it was computed from; 0 creates the trip
	claimOp  string // claim|release|-: the driver's claim on this trip
	driverID string // whose claim
	riderOp  string // set|del|-: the rider's active trip
	// deadline, when set on creation, is when tripstate ends the search
	// itself; the trip leaves the searching set once it is accepted or ends.
	deadline time.Time
}

// Outputs are the events the transition causes: trip.updated and the pushes
// to the rider and driver (see outputs).
func (t Transition) Outputs() []ev.Outgoing { return outputs(t.Update) }

// Codes of a Rejection; they are the phone contract's error codes.
const (
	CodeNotFound  = "not_found" // no such trip
	CodeForbidden = "forbidden" // the sender is not a party to the trip
	CodeConflict  = "conflict"  // not possible in the trip's current state
)

// Rejection is a well-formed command that may not be applied to the trip as
// it is.
type Rejection struct {
	Code   string // CodeNotFound, CodeForbidden or CodeConflict
	Reason string
}

func (r *Rejection) Error() string { return r.Reason }

func reject(code, format string, args ...any) error {
	return &Rejection{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// Decide computes the transition cmd makes on cur (exists says whether there
// is a trip at all), or why it may not. It is the trip's only rule book:
// tripstate applies what it returns, the gateway asks it before publishing a
// phone's command, and the dispatch simulation moves its trips with it. It
// does no I/O and reads no clock but cmd.At.
//
// A refusal is a *Rejection, or an ev.Permanent error for a command that is
// malformed whatever the trip's state. The checks run in this order, so an
// answer names the first thing wrong:
//   - no trip → not_found (a ride.request for an existing trip → conflict);
//   - a phone command from someone who is not a party → forbidden: for
//     offer.accept/decline, a driver the trip was never offered to; for the
//     others, anyone but the assigned driver, the driver of the open offer
//     (whose command is early, not foreign) and, for trip.cancel, the rider.
//     A party is a (role, id) pair: the rider must send as a rider and a
//     driver as a driver, so a driver token whose sub is the rider's id is a
//     stranger to the rider's trip, and so is a rider token carrying the
//     driver's id;
//   - a command the state machine does not allow now → conflict, and so is
//     an answer to an offer that is not open, not this one or not this
//     driver's, an accept after the offer expired, or a second offer of the
//     trip to one driver.
func Decide(cur ride.Trip, exists bool, cmd Command) (Transition, error) {
	if cmd.Type == ev.TypeRideRequest {
		if exists {
			return Transition{}, reject(CodeConflict, "trip %s already exists", cmd.TripID)
		}
		if cmd.UserID == "" || cmd.Pickup == nil || cmd.Dropoff == nil {
			return Transition{}, ev.Permanent(fmt.Errorf("ride.request %s lacks rider, pickup or dropoff", cmd.ID))
		}
		if cmd.Role != ride.RoleRider {
			return Transition{}, reject(CodeForbidden, "a %s may not request a ride", roleName(cmd.Role))
		}
		t := ride.Trip{TripID: cmd.TripID, State: ride.StateRequested, Version: 1, RiderID: cmd.UserID,
			Pickup: *cmd.Pickup, Dropoff: *cmd.Dropoff, RequestedAt: cmd.At, UpdatedAt: cmd.At}
		return Transition{eventID: cmd.ID, Update: ride.TripUpdated{Trip: t, Cause: cmd.Type}, claimOp: "-", riderOp: "set"}, nil
	}
	if !exists {
		return Transition{}, reject(CodeNotFound, "trip %s does not exist", cmd.TripID)
	}
	if err := checkParty(cur, cmd); err != nil {
		return Transition{}, err
	}
	next, ok := Next(cur.State, cmd.Type)
	if !ok {
		return Transition{}, reject(CodeConflict, "%s is illegal in state %s", cmd.Type, cur.State)
	}
	t := cur
	t.Offered = slices.Clone(cur.Offered)
	t.State, t.Version, t.UpdatedAt, t.Reason = next, cur.Version+1, cmd.At, ""
	c := Transition{eventID: cmd.ID, from: cur.Version, claimOp: "-", riderOp: "-"}
	upd := ride.TripUpdated{Cause: cmd.Type}

	switch cmd.Type {
	case ev.TypeDispatchOffer:
		if cmd.DriverID == "" || cmd.OfferID == "" {
			return Transition{}, ev.Permanent(fmt.Errorf("dispatch.offer %s lacks driver or offer id", cmd.ID))
		}
		if slices.Contains(cur.Offered, cmd.DriverID) {
			return Transition{}, reject(CodeConflict, "trip %s was already offered to driver %s", cur.TripID, cmd.DriverID)
		}
		t.Offer = &ride.Offer{OfferID: cmd.OfferID, DriverID: cmd.DriverID, PickupDistanceM: cmd.PickupDistanceM, ExpiresAt: cmd.ExpiresAt}
		t.Offered = append(t.Offered, cmd.DriverID)
	case ev.TypeOfferAccept, ev.TypeOfferDecline:
		if cur.Offer == nil || cur.Offer.OfferID != cmd.OfferID {
			return Transition{}, reject(CodeConflict, "offer %s is not open", cmd.OfferID)
		}
		if cur.Offer.DriverID != cmd.UserID {
			return Transition{}, reject(CodeConflict, "offer %s is not for %s", cmd.OfferID, cmd.UserID)
		}
		upd.EndedOffer, t.Offer = cur.Offer, nil
		if cmd.Type == ev.TypeOfferAccept {
			if cmd.At.After(cur.Offer.ExpiresAt) {
				return Transition{}, reject(CodeConflict, "offer %s expired at %s", cmd.OfferID, ev.FormatTime(cur.Offer.ExpiresAt))
			}
			t.DriverID = cmd.UserID
			c.claimOp, c.driverID = "claim", cmd.UserID
		} else {
			t.Reason = "offer_declined"
		}
	case ev.TypeDispatchExpire:
		if cur.Offer == nil || cur.Offer.OfferID != cmd.OfferID {
			return Transition{}, reject(CodeConflict, "offer %s is not open", cmd.OfferID)
		}
		upd.EndedOffer, t.Offer, t.Reason = cur.Offer, nil, "offer_expired"
	case ev.TypeDispatchNoDrivers, ev.TypeTripDeadline:
		upd.EndedOffer, t.Offer, t.Reason = cur.Offer, nil, "no_drivers"
		c.riderOp = "del"
	case ev.TypeTripCancel:
		var by string
		switch {
		case cmd.Role == ride.RoleRider && cmd.UserID == cur.RiderID:
			by = "rider"
		case cmd.Role == ride.RoleDriver && cmd.UserID == cur.DriverID:
			by = "driver"
		default:
			// The offered driver: a party, but the trip is not theirs to
			// cancel until they accept (they decline instead).
			return Transition{}, reject(CodeConflict, "%s has not accepted trip %s", cmd.UserID, cur.TripID)
		}
		t.Reason = "cancelled_by_" + by
		if cmd.Reason != "" {
			t.Reason += ": " + cmd.Reason
		}
		upd.EndedOffer, t.Offer = cur.Offer, nil
		c.riderOp = "del"
		if cur.DriverID != "" {
			c.claimOp, c.driverID = "release", cur.DriverID
		}
	case ev.TypeTripArrive, ev.TypeTripStart, ev.TypeTripComplete:
		if cmd.UserID != cur.DriverID {
			// Only the offered driver gets here, and Transitions allows
			// these only once a driver is assigned; kept as a safeguard.
			return Transition{}, reject(CodeConflict, "%s has not accepted trip %s", cmd.UserID, cur.TripID)
		}
		if cmd.Type == ev.TypeTripComplete {
			c.riderOp = "del"
			c.claimOp, c.driverID = "release", cur.DriverID
		}
	}
	upd.Trip = t
	c.Update = upd
	return c, nil
}

// checkParty refuses a phone's command from someone who is not a party to
// cur; the dispatcher's and tripstate's own commands have no sender.
//
// The sender is the pair (cmd.Role, cmd.UserID): a driver's command counts
// only from a driver, a rider's only from a rider.
func checkParty(cur ride.Trip, cmd Command) error {
	user := cmd.UserID
	asDriver := user != "" && cmd.Role == ride.RoleDriver
	asRider := user != "" && cmd.Role == ride.RoleRider
	switch cmd.Type {
	case ev.TypeOfferAccept, ev.TypeOfferDecline:
		if !asDriver || !slices.Contains(cur.Offered, user) {
			return reject(CodeForbidden, "trip %s was not offered to %s %s", cur.TripID, roleName(cmd.Role), user)
		}
	case ev.TypeTripCancel, ev.TypeTripArrive, ev.TypeTripStart, ev.TypeTripComplete:
		party := asDriver && (user == cur.DriverID || cur.Offer != nil && cur.Offer.DriverID == user) ||
			asRider && cmd.Type == ev.TypeTripCancel && user == cur.RiderID
		if !party {
			return reject(CodeForbidden, "%s %s is not the rider or driver of trip %s", roleName(cmd.Role), user, cur.TripID)
		}
	}
	return nil
}

// roleName is a sender's role for a refusal's reason.
func roleName(role string) string {
	if role == "" {
		return "sender without a role"
	}
	return role
}
