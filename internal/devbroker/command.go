package devbroker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Command implements `hexride broker`: the embedded Kafka-protocol broker
// served on its own, so that the standalone services run on one machine as
// they do in production. It is a development broker: one process, no
// replication, every partition led by itself. It runs until ctx ends.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hexride broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9092", "host:port to listen on (port 0 picks a free one)")
	dir := fs.String("data", "", "directory that keeps the log across restarts; empty keeps it in memory")
	sync := fs.Bool("sync", true, "with -data, fsync every produced batch before acknowledging it")
	partitions := fs.Int("partitions", 4, "partitions of each platform topic it creates")
	retention := fs.Duration("retention", 0, "how long events are kept; 0 keeps them all")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("hexride broker: unexpected argument %q (every setting is a flag, see -h)", fs.Arg(0))
	case *partitions < 1 || *partitions > 1024:
		return fmt.Errorf("hexride broker: -partitions %d: want 1 to 1024", *partitions)
	case *retention != 0 && *retention < time.Minute:
		return fmt.Errorf("hexride broker: -retention %s: want 0 (keep all) or at least 1m", *retention)
	}
	b, err := Start(Options{Addr: *addr, Partitions: *partitions, DataDir: *dir,
		SyncWrites: *sync, Retention: *retention})
	if err != nil {
		return fmt.Errorf("hexride broker: %w", err)
	}
	defer b.Close()
	// Scripts and tests wait for this line to know the port is open.
	if _, err := fmt.Fprintf(stdout, "hexride broker listening on %s (development broker: one process, no replication)\n",
		strings.Join(b.Addrs(), ",")); err != nil {
		return fmt.Errorf("hexride broker: %w", err)
	}
	<-ctx.Done()
	return nil
}
