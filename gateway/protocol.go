package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	fastjson "github.com/segmentio/encoding/json"

	"github.com/hexride/hexride/protocol"
)

func badRequest(format string, args ...any) *protocol.Error {
	return protocol.Errorf(protocol.CodeBadRequest, format, args...)
}

// DecodeFrame parses and validates one client frame. Reading hostile bytes
// is the gateway's job; the frame's type and the checks of its fields are
// the contract's (protocol.Frame, Frame.Validate).
//
// It returns the frame (with Type and ID filled in as far as they could be
// read, so an error can name the command) and a protocol.Error for anything
// malformed, unknown or out of range. Role checks are separate (Authorize).
func DecodeFrame(b []byte) (protocol.Frame, *protocol.Error) {
	var f protocol.Frame
	// Nearly every frame is well formed, and most are pings: segmentio's
	// decoder takes a quarter of encoding/json's time. What it refuses goes
	// through encoding/json, whose errors the answers quote. Where both
	// accept, they agree (FuzzDecodeFrameFastPath).
	if fastjson.Unmarshal(b, &f) != nil {
		f = protocol.Frame{}
		if perr := decodeFrameStd(b, &f); perr != nil {
			return f, perr
		}
	}
	if perr, idAtFault := checkStrict(b); perr != nil {
		if idAtFault || len(f.ID) > protocol.MaxIDBytes {
			return protocol.Frame{}, perr
		}
		return protocol.Frame{ID: f.ID}, perr
	}
	// Validate checks the id too, but the answer to an over-long id must
	// not echo it: the frame is dropped whole here.
	if len(f.ID) > protocol.MaxIDBytes {
		return protocol.Frame{}, badRequest("id is longer than %d bytes", protocol.MaxIDBytes)
	}
	return f, f.Validate()
}

// decodeFrameStd decodes b with encoding/json and says what is wrong with
// it in the contract's words. On error, f holds what can be told of the
// frame: its id, if that could be read.
func decodeFrameStd(b []byte, f *protocol.Frame) *protocol.Error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(f); err != nil {
		// Salvage the id for the error answer if the frame is a JSON object
		// whose other fields have the wrong types.
		var idOnly struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(b, &idOnly) == nil && len(idOnly.ID) <= protocol.MaxIDBytes {
			*f = protocol.Frame{ID: idOnly.ID}
		} else {
			*f = protocol.Frame{}
		}
		return badRequest("malformed JSON: %s", jsonProblem(err))
	}
	if len(f.ID) > protocol.MaxIDBytes {
		*f = protocol.Frame{}
		return badRequest("id is longer than %d bytes", protocol.MaxIDBytes)
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		*f = protocol.Frame{ID: f.ID}
		return badRequest("one JSON object per frame, nothing after it")
	}
	return nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	default:
		return truncate(err.Error(), 120)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Authorize checks that role may send f.
func Authorize(role string, f protocol.Frame) *protocol.Error {
	for _, r := range protocol.ClientMessageTypes[f.Type] {
		if r == role {
			return nil
		}
	}
	return &protocol.Error{Code: protocol.CodeForbidden, Message: fmt.Sprintf("a %s may not send %s", role, f.Type)}
}
