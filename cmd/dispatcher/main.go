// Command dispatcher runs hexride's dispatcher service alone, against a real Kafka
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
	svc := platform.Service{Name: "dispatcher", DefaultAddr: "127.0.0.1:8081", DefaultAdminAddr: "127.0.0.1:9081"}
	if err := platform.Main(ctx, svc, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dispatcher:", err)
		os.Exit(1)
	}
}
