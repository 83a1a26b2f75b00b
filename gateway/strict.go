package gateway

import (
	"bytes"
	"errors"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/hexride/hexride/protocol"
)

// checkStrict refuses a frame that both JSON decoders read but that means
// two things: a key given twice (encoding/json and segmentio keep the last,
// so `"lat":1,"lat":2` would move a driver to whichever a proxy or a log
// reader did not pick) or a string that is not valid UTF-8 (both decoders
// silently turn it into U+FFFD, so an id would not be the id that was
// sent). jsontext checks both by RFC 7493 without allocating; only a
// refused frame pays for a second pass that says where the problem is.
//
// What it does not catch: keys that differ only in case ("lat", "LAT"),
// which encoding/json maps to the same field.
//
// idAtFault says the problem is in the frame's id, which the answer must
// then not name.
func checkStrict(b []byte) (perr *protocol.Error, idAtFault bool) {
	if jsontext.Value(b).IsValid() {
		return nil, false
	}
	_, err := jsontext.NewDecoder(bytes.NewReader(b)).ReadValue()
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) {
		// IsValid and ReadValue read the same grammar; a disagreement is a
		// bug, but the frame is refused either way.
		return badRequest("malformed JSON"), true
	}
	at := string(se.JSONPointer)
	idAtFault = at == "/id"
	if at == "" {
		at = "/"
	}
	if errors.Is(err, jsontext.ErrDuplicateName) {
		return badRequest("duplicate key %q at %q: each key may appear once", truncate(se.JSONPointer.LastToken(), 64), truncate(at, 64)), idAtFault
	}
	return badRequest("invalid UTF-8 or an unpaired surrogate in a string at %q: strings must be valid UTF-8", truncate(at, 64)), idAtFault
}
