package client

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/hexride/hexride/protocol"
)

// Send sends one command and waits for its answer: the ack, or the
// contract's error as a *Error (compare with errors.Is against ErrConflict
// and the other sentinels). f.ID is the command's id; an empty one is
// generated. Until it is answered the command is resent with that same id,
// which the platform applies once and answers with the same ack: when its
// connection ends first (after the client reconnects), when no answer comes
// within Options.AckTimeout, and when the answer is `unavailable`; at most
// Options.MaxAttempts times, after which Send returns the last
// `unavailable` or ErrNoAck. A frame that fails protocol.Frame.Validate is
// refused here (ErrBadRequest) without being sent.
//
// ctx bounds the whole call, waiting for a connection included. A call cut
// short by ctx may still be applied: resend with the same id to learn its
// outcome.
func (c *Client) Send(ctx context.Context, f protocol.Frame) (protocol.Answer, error) {
	if f.ID == "" {
		f.ID = c.newID()
	}
	if pe := f.Validate(); pe != nil {
		return protocol.Answer{}, &Error{Code: pe.Code, Message: pe.Message}
	}
	b, err := json.Marshal(f)
	if err != nil {
		return protocol.Answer{}, err
	}
	ch := make(chan protocol.Answer, 1)
	c.mu.Lock()
	if c.pending[f.ID] != nil {
		c.mu.Unlock()
		return protocol.Answer{}, &Error{Code: protocol.CodeConflict, Message: "a command with id " + f.ID + " is already waiting for its answer"}
	}
	c.pending[f.ID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, f.ID)
		c.mu.Unlock()
	}()

	var last error = ErrNoAck
	for attempt := 1; attempt <= c.opts.MaxAttempts; attempt++ {
		cn, err := c.current(ctx)
		if err != nil {
			return protocol.Answer{}, err
		}
		if err := c.write(cn, b); err != nil {
			// The connection is going: wait for it to end, then resend on
			// the next one.
			select {
			case <-cn.lost:
			case <-ctx.Done():
				return protocol.Answer{}, ctx.Err()
			}
			continue
		}
		timer := time.NewTimer(c.opts.AckTimeout)
		select {
		case a := <-ch:
			timer.Stop()
			if a.Type == protocol.MsgAck {
				return a, nil
			}
			e := &Error{Code: a.Code, Message: a.Message}
			if a.Code != protocol.CodeUnavailable {
				return a, e
			}
			last = e
			// Safe to retry with the same id; give the platform a moment.
			if attempt < c.opts.MaxAttempts && !c.pause(ctx, c.backoff(attempt)) {
				if ctx.Err() != nil {
					return protocol.Answer{}, ctx.Err()
				}
				return protocol.Answer{}, c.Err()
			}
		case <-cn.lost:
			timer.Stop()
			last = ErrNoAck
		case <-timer.C:
			last = ErrNoAck
		case <-ctx.Done():
			timer.Stop()
			return protocol.Answer{}, ctx.Err()
		case <-c.done:
			timer.Stop()
			return protocol.Answer{}, c.Err()
		}
	}
	return protocol.Answer{}, last
}

// pause waits d, or until ctx or the client ends (false).
func (c *Client) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-c.done:
		return false
	}
}

// Location sends a driver's position, fire and forget as the contract
// allows (no id, so no answer): it waits for a connection (bounded by ctx),
// writes the frame once and returns. A location lost with a dropped
// connection is not resent; the next one supersedes it. The gateway's
// refusal of one (out of range, implausibly fast, rate-limited) goes to
// Options.OnError. To have a location acked, Send it with an id.
func (c *Client) Location(ctx context.Context, lat, lng float64) error {
	f := protocol.Frame{Type: protocol.MsgLocation, Lat: &lat, Lng: &lng}
	if pe := f.Validate(); pe != nil {
		return &Error{Code: pe.Code, Message: pe.Message}
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	cn, err := c.current(ctx)
	if err != nil {
		return err
	}
	if err := c.write(cn, b); err != nil {
		return errors.Join(errors.New("hexride client: location not sent: connection lost"), err)
	}
	return nil
}

// SetAvailable puts a driver on duty (true) or off it.
func (c *Client) SetAvailable(ctx context.Context, available bool) (protocol.Answer, error) {
	return c.Send(ctx, protocol.Frame{Type: protocol.MsgAvailability, Available: &available})
}

// RequestRide asks for a ride from pickup to dropoff and returns the new
// trip's id. Its progress arrives as `trip` pushes. Resent across
// reconnects with one id, it creates one trip.
func (c *Client) RequestRide(ctx context.Context, pickup, dropoff protocol.LatLng) (string, error) {
	a, err := c.Send(ctx, protocol.Frame{Type: protocol.MsgRideRequest, Pickup: protocol.NewPoint(pickup), Dropoff: protocol.NewPoint(dropoff)})
	return a.TripID, err
}

// Accept accepts the offer an `offer` push carried. The ack means the
// acceptance is recorded; whether the trip is the driver's arrives as a
// `trip` push (ACCEPTED).
func (c *Client) Accept(ctx context.Context, tripID, offerID string) (protocol.Answer, error) {
	return c.Send(ctx, protocol.Frame{Type: protocol.MsgOfferAccept, TripID: tripID, OfferID: offerID})
}

// Decline declines an offer.
func (c *Client) Decline(ctx context.Context, tripID, offerID string) (protocol.Answer, error) {
	return c.Send(ctx, protocol.Frame{Type: protocol.MsgOfferDecline, TripID: tripID, OfferID: offerID})
}

// Arrive says the driver is at the pickup. Wait for the previous step's
// `trip` push before sending the next step: the gateway checks each
// command against the trip's applied state.
func (c *Client) Arrive(ctx context.Context, tripID string) (protocol.Answer, error) {
	return c.Send(ctx, protocol.Frame{Type: protocol.MsgTripArrive, TripID: tripID})
}

// Start says the rider is on board.
func (c *Client) Start(ctx context.Context, tripID string) (protocol.Answer, error) {
	return c.Send(ctx, protocol.Frame{Type: protocol.MsgTripStart, TripID: tripID})
}

// Complete says the trip reached its drop-off.
func (c *Client) Complete(ctx context.Context, tripID string) (protocol.Answer, error) {
	return c.Send(ctx, protocol.Frame{Type: protocol.MsgTripComplete, TripID: tripID})
}

// Cancel cancels a trip before pickup (rider or driver).
func (c *Client) Cancel(ctx context.Context, tripID string) (protocol.Answer, error) {
	return c.Send(ctx, protocol.Frame{Type: protocol.MsgTripCancel, TripID: tripID})
}
