// Command hexride runs the whole platform in one process: gateway,
// dispatcher and tripstate, on an embedded Kafka-protocol broker and an
// embedded Redis-protocol server unless KAFKA_BROKERS and REDIS_ADDR say
// otherwise.
//
//	hexride              run the platform (see -h for every setting)
//	hexride token -role driver -sub d-42
//	                     print a token signed with HEXRIDE_JWT_SECRET (or the
//	                     development secret the demo uses when none is set)
//	hexride loadtest -target http://127.0.0.1:8080 -drivers 200 -rate 5
//	                     drive simulated phones at a platform on this machine
//	                     (the same as go run ./loadtest; see -h)
//	hexride history [-brokers host:port] [-json] TRIP_ID
//	                     print every record the event log holds about a trip
//	                     (commands, transitions, pushes, dead letters), in order
//	hexride replay [-brokers host:port] [-redis live-addr] [-into empty-addr]
//	                     rebuild every trip from trip.events into an empty Redis
//	                     and compare with the live one; exit 1 if they differ
//	hexride broker -addr 127.0.0.1:9092 -data DIR
//	                     serve the embedded Kafka-protocol broker alone, for
//	                     the standalone services (a development broker, not
//	                     a Kafka replacement; see docs/faults.md)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hexride/hexride/internal/devbroker"
	"github.com/hexride/hexride/internal/devredis"
	"github.com/hexride/hexride/internal/platform"
	"github.com/hexride/hexride/loadtest/sim"
	"github.com/hexride/hexride/ride"
	"github.com/hexride/hexride/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var status exitStatus
	switch {
	case errors.As(err, &status):
		os.Exit(int(status)) // the subcommand has said why
	case err != nil:
		fmt.Fprintln(os.Stderr, "hexride:", err)
		os.Exit(1)
	}
}

// exitStatus is a subcommand's exit status other than 0, its messages
// already written.
type exitStatus int

func (s exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "token":
			return platform.MintToken(args[1:], getenv, stdout, stderr)
		case "broker":
			return devbroker.Command(ctx, args[1:], stdout, stderr)
		case "loadtest":
			if code := sim.Command(ctx, "hexride loadtest", args[1:], stdout, stderr); code != sim.ExitOK {
				return exitStatus(code)
			}
			return nil
		case "history":
			return historyCommand(ctx, args[1:], getenv, stdout, stderr)
		case "replay":
			return replayCommand(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	return platform.Demo(ctx, args, getenv, stderr, platform.Options{DevBroker: devbroker.ForPlatform, DevRedis: devredis.Start, DemoCity: func(ctx context.Context, addr string) error {
		_, err := sim.Run(ctx, sim.DemoCity("http://"+addr), nil)
		return err
	}, MapCity: demoStreets(), OnReady: func(r *platform.Running) {
		// The page mints its own viewer token when development auth is on;
		// otherwise the link carries one, so the map still opens by itself.
		mapURL := "http://" + r.Addr + "/"
		if !r.DevAuth {
			tok, err := r.Tokens.Mint("map-demo", "viewer", 24*time.Hour)
			if err != nil {
				fmt.Fprintln(stderr, "hexride: mint the map's viewer token:", err)
			} else {
				mapURL += "#token=" + tok
			}
		}
		fmt.Fprintf(stdout, `
hexride is running on http://%[1]s
  Live map:   %[2]s
  WebSocket:  ws://%[1]s/v1/ws?token=<token>   (protocol: asyncapi.yaml)
  Get a token: curl -s -X POST http://%[1]s/v1/dev/token -d '{"role":"rider","sub":"r-1"}'
          or:  go run ./cmd/hexride token -role driver -sub d-1
  Health:     http://%[1]s/healthz   Metrics: http://%[1]s/metrics   (development only: the standalone services serve them on HEXRIDE_ADMIN_ADDR)
`, r.Addr, mapURL)
		if r.AdminAddr != "" {
			fmt.Fprintf(stdout, "  Admin:      http://%[1]s/metrics   Profiles: http://%[1]s/debug/pprof/\n", r.AdminAddr)
		}
		fmt.Fprintln(stdout, "Press Ctrl-C to stop.")
	}})
}

// demoStreets is the demo city's street grid, for the live map to draw.
func demoStreets() *web.City {
	c := sim.DemoCity("")
	city := sim.NewCity(c.Center, c.SizeKM)
	var streets []web.Street
	for _, s := range city.Streets() {
		streets = append(streets, web.Street{A: ride.LatLng(s.A), B: ride.LatLng(s.B), Arterial: s.Arterial})
	}
	return &web.City{Center: ride.LatLng(c.Center), Streets: streets}
}
