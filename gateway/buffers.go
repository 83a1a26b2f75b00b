package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
)

// phoneBufferSize is a phone socket's read and write buffer. net/http hands
// a hijacked connection over with 4 KiB for each, and coder/websocket keeps
// both for the socket's life: 8 KiB of an idle socket's cost. Phones send
// frames of a few hundred bytes (a location is about 200) and get pushes
// under 1 KiB; a larger frame only takes one more system call. Measured in
// docs/loadtest.md.
const phoneBufferSize = 1024

// smallBuffers hands coder/websocket the hijacked connection with
// phoneBufferSize buffers in place of net/http's. The live map's viewers
// keep the defaults: they are few and their frames are large.
type smallBuffers struct{ http.ResponseWriter }

func (w smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	n := brw.Reader.Buffered()
	if n > phoneBufferSize {
		// The phone sent more than a small buffer holds before it saw the
		// upgrade: keep the buffer that holds it.
		return conn, brw, nil
	}
	var src io.Reader = conn
	if n > 0 {
		b, _ := brw.Reader.Peek(n)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn)
	}
	r := bufio.NewReaderSize(src, phoneBufferSize)
	if n > 0 {
		// Move the early bytes into the new buffer now: the caller reads
		// what is buffered, then resets the reader onto the connection.
		if _, err := r.Peek(n); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("carry %d early bytes over: %w", n, err)
		}
	}
	return conn, bufio.NewReadWriter(r, bufio.NewWriterSize(conn, phoneBufferSize)), nil
}
