// Package client is the Go SDK for hexride's phone contract (v1,
// asyncapi.yaml; the messages are package protocol's): one user's
// connection to the gateway, kept up across drops.
//
// Dial connects with a token (its role claim, driver or rider, decides what
// the user may send). Then:
//
//   - Commands: SetAvailable, Location, RequestRide, Accept, Decline,
//     Arrive, Start, Complete, Cancel, or Send for any protocol.Frame. Each
//     (but Location, fire and forget) carries an id, generated unless
//     given, and returns the ack or the contract's error as a *Error, to
//     compare with errors.Is against ErrConflict, ErrForbidden and the
//     others. Until it is answered it is resent with the same id, which the
//     platform applies once and answers with the same ack: after a
//     reconnect, after Options.AckTimeout, after `unavailable`; at most
//     Options.MaxAttempts times.
//   - Pushes: offer, trip, driver.location and resync arrive on Pushes in
//     seq order, none twice, none missing across reconnects. The client
//     remembers the last seq delivered, resumes after it, drops replayed
//     copies, and resumes again if a seq is ever skipped; when the gateway
//     cannot fill a gap it sends resync with the user's current trip, which
//     is delivered like any push. The buffer is bounded (Options.Buffer);
//     when the app does not take pushes the client stops reading, and the
//     gateway, past its own 256, closes the socket with 1013 and the client
//     resumes: nothing is lost, but keep reading.
//   - Reconnects: with exponential back-off and jitter, on every close but
//     4008, and on 4001 only with a fresh token (below).
//
// What the client does on each close code (protocol.Close*):
//
//   - 1001 going away, 1013 try again later, a cut connection: reconnect
//     and resume after the last seq.
//   - 1008 policy violation (flooding): wait at least Options.PolicyBackoff
//     (5s: the gateway refuses the user that long), then as above; a
//     handshake refused with 429 waits its Retry-After.
//   - 4001 token expired: ask Options.Token for a fresh token and reconnect;
//     without it, stop with ErrTokenExpired.
//   - 4008 replaced by a newer connection of the same user: stop with
//     ErrReplaced (reconnecting would close the newer one).
//   - A reconnect refused with 401: ask Options.Token once, else stop with
//     ErrUnauthorized.
//
// Every call takes a context that bounds it, waiting for a connection
// included; Dial's bounds only the first handshake. Close ends the
// connection and the client: waiting calls return ErrClosed and Pushes is
// closed. Done and Err tell when and why a client stopped by itself.
//
// A driver's app, in short:
//
//	c, err := client.Dial(ctx, "ws://127.0.0.1:8080/v1/ws", token, client.Options{Token: refresh})
//	c.SetAvailable(ctx, true)
//	c.Location(ctx, 37.7749, -122.4194) // every few seconds
//	for p := range c.Pushes() {
//		if p.Offer != nil {
//			c.Accept(ctx, p.Offer.TripID, p.Offer.OfferID)
//		}
//	}
//
// examples/ride runs a whole ride with two clients.
package client
