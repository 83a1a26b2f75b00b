package platform

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestShutdownWithSilentClients stops a platform that holds a TCP connection
// that never sent a request (net/http's Shutdown waits five seconds for
// those) and a socket whose phone never answers the close frame: Run must
// return nil, and promptly.
func TestShutdownWithSilentClients(t *testing.T) {
	e := startPlatform(t, nil)
	spare, err := net.Dial("tcp", e.run.Addr) // a client's spare connection
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	silent, _, err := websocket.Dial(dctx, "ws://"+e.run.Addr+"/v1/ws?token="+e.token("driver", "silent"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.CloseNow() // never read: the 1001 goes unanswered

	start := time.Now()
	if err := e.stop(); err != nil {
		t.Fatalf("Run returned %v after %s; want a clean stop", err, time.Since(start).Round(time.Millisecond))
	}
	if took := time.Since(start); took > 4500*time.Millisecond {
		t.Fatalf("stopping took %s; want well under the 5s shutdown budget", took)
	}
}
