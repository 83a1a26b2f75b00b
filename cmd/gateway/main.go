// Command gateway runs hexride's gateway service alone, against a real Kafka
// (KAFKA_BROKERS) and Redis (REDIS_ADDR). Run with -h for every setting.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hexride/hexride/internal/platform"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	svc := platform.Service{Name: "gateway", DefaultAddr: "127.0.0.1:8080", DefaultAdminAddr: "127.0.0.1:9080"}
	if err := platform.Main(ctx, svc, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}
