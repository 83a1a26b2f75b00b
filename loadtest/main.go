// Command loadtest drives simulated phones at a hexride platform on this
// machine and reports what it measured: ping throughput, match rate,
// request→offer and request→accepted latency, trip push and ping→rider latency, pickup distance
// and errors by code. The phones speak only the public WebSocket contract;
// see package sim for the city and their behaviour.
//
//	go run ./cmd/hexride &
//	go run ./loadtest -drivers 200 -rate 5 -duration 20s
//
// Only loopback targets are accepted (127.0.0.0/8, ::1, localhost): a load
// test aimed anywhere else exits with status 2.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hexride/hexride/loadtest/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := sim.Command(ctx, "loadtest", os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
