package client

import (
	"errors"

	"github.com/hexride/hexride/protocol"
)

// Error is the contract's answer to a command that failed (an `error`
// frame), or a refused handshake (its JSON body), as a Go error. Code is one
// of the protocol.Code* codes, or CodeUnauthorized for a refused token.
//
// Compare with errors.Is against the sentinels, which match any Error of
// their code whatever its message:
//
//	if errors.Is(err, client.ErrConflict) { ... }
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "hexride: " + e.Code
	}
	return "hexride: " + e.Code + ": " + e.Message
}

// Is makes every Error match the sentinel of its code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// CodeUnauthorized is the error of a handshake refused with HTTP 401: the
// token is missing, expired, badly signed or otherwise refused
// (asyncapi.yaml, servers.gateway). It is not an answer code.
const CodeUnauthorized = "unauthorized"

// Sentinels for the contract's error codes (asyncapi.yaml,
// components/schemas/ErrorCode), for errors.Is.
var (
	// ErrBadRequest: malformed, unknown type, missing or out-of-range
	// field. The client checks each frame first (protocol.Frame.Validate),
	// so most come from that check without a round trip.
	ErrBadRequest = &Error{Code: protocol.CodeBadRequest}
	// ErrForbidden: the role may not send this, or the trip is not yours.
	ErrForbidden = &Error{Code: protocol.CodeForbidden}
	// ErrNotFound: no such trip.
	ErrNotFound = &Error{Code: protocol.CodeNotFound}
	// ErrConflict: an illegal or stale transition (accepting an expired
	// offer), or an id reused for a different command.
	ErrConflict = &Error{Code: protocol.CodeConflict}
	// ErrRateLimited: too many frames; slow down. Also a handshake refused
	// with HTTP 429 (the client then waits Retry-After before trying again).
	ErrRateLimited = &Error{Code: protocol.CodeRateLimited}
	// ErrTooLarge: a frame over protocol.MaxFrameBytes.
	ErrTooLarge = &Error{Code: protocol.CodeTooLarge}
	// ErrUnavailable: the platform could not take the command. The client
	// resends it with the same id (Options.MaxAttempts); a caller sees it
	// only when the attempts are spent.
	ErrUnavailable = &Error{Code: protocol.CodeUnavailable}
	// ErrUnauthorized: the handshake was refused with HTTP 401.
	ErrUnauthorized = &Error{Code: CodeUnauthorized}
)

// Errors that end a client or a call.
var (
	// ErrClosed: Close was called.
	ErrClosed = errors.New("hexride client: closed")
	// ErrReplaced: the gateway closed the socket with 4008, because the
	// same user opened more sockets than allowed and this was the oldest.
	// The client does not reconnect: doing so would close the user's newest
	// socket in turn.
	ErrReplaced = errors.New("hexride client: replaced by a newer connection of the same user (4008); not reconnecting")
	// ErrTokenExpired: the socket was closed with 4001 and no
	// Options.Token callback can supply a fresh token.
	ErrTokenExpired = errors.New("hexride client: token expired (4001) and no Options.Token to refresh it")
	// ErrNoAck: a command was sent Options.MaxAttempts times without an
	// answer. It may still have been applied: resending it later with the
	// same id (Client.Send) is safe.
	ErrNoAck = errors.New("hexride client: no answer to the command")
)
