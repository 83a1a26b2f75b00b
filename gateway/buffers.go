package gateway

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"
)

// phoneBufferSize is a phone socket's read and write buffer. net/http hands
// a hijacked connection over with 4 KiB for each, and coder/websocket keeps
// both for the socket's life: 8 KiB of an idle socket's cost. Phones send
// frames of a few hundred bytes (a location is about 200) and get pushes
// under 1 KiB; a larger frame only takes one more system call. Measured in
// docs/loadtest.md.
const phoneBufferSize = 1024

// hijacker hands coder/websocket the hijacked connection and keeps it: at
// shutdown the gateway closes what is left of its sockets at the TCP level,
// since coder/websocket's Close waits up to 5 s for a phone that does not
// answer. With small set, the connection gets phoneBufferSize buffers in
// place of net/http's; the live map's viewers keep the defaults: they are
// few and their frames are large.
type hijacker struct {
	http.ResponseWriter
	small bool
	conn  net.Conn // set by Hijack
}

func (w *hijacker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = conn
	n := brw.Reader.Buffered()
	if !w.small || n > phoneBufferSize {
		// A phone that sent more than a small buffer holds before it saw
		// the upgrade keeps the buffer that holds it.
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

// frameBuffers hold frames while they are handled. coder/websocket's Read
// reads each message with io.ReadAll, a fresh zeroed 512-byte slice per
// frame: 5% of the gateway's CPU at 15,000 pings/s, with the garbage it
// leaves. A socket's buffer is lent only while its frame is handled, so an
// idle socket holds none.
var frameBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, phoneBufferSize)
	return &b
}}

// readFrame reads the socket's next message into a pooled buffer; give it
// back with frameBuffers.Put once nothing refers to the frame.
func readFrame(ctx context.Context, c *websocket.Conn) (websocket.MessageType, *[]byte, error) {
	typ, r, err := c.Reader(ctx)
	if err != nil {
		return 0, nil, err
	}
	buf := frameBuffers.Get().(*[]byte)
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			*buf = b
			return typ, buf, nil
		}
		if err != nil {
			*buf = b[:0]
			frameBuffers.Put(buf)
			return 0, nil, err
		}
	}
}
