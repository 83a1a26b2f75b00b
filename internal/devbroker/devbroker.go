// Package devbroker is the development Kafka-protocol broker: kfake (from
// franz-go) in this process, on a real loopback TCP port, so the one-command
// run, the tests and the demo need no Kafka installed, while the services
// talk to it with the same kafka-go code that talks to a real cluster. No
// production binary imports it.
package devbroker

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hexride/hexride/events"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is a Kafka-protocol broker inside this process (kfake),
// listening on a real loopback TCP port. The services talk to it with the
// same kafka-go code that talks to a real cluster.
type Broker struct {
	c *kfake.Cluster
}

// segmentBytes is the size at which the embedded broker starts a new
// segment of a partition's log (see StartLocal).
const segmentBytes = 1 << 20

// StartLocal listens on 127.0.0.1:port (0 picks a free port) with
// every platform topic created with the given number of partitions. A
// non-empty dataDir keeps the log on disk across restarts.
//
// retention bounds how long events are kept (0 keeps them all). The broker
// holds every event in memory, so a one-process demo left running would
// otherwise grow by every ping it ever took. Expired events are dropped
// every retention/10 (at least a second apart), a whole produce batch at a
// time once its newest event is older than retention, and their memory is
// freed a segment (about a MiB of a partition's log) at a time.
func StartLocal(port, partitions int, dataDir string, retention time.Duration) (*Broker, error) {
	return Start(Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Partitions: partitions,
		DataDir: dataDir, Retention: retention})
}

// Options configure Start.
type Options struct {
	// Addr is host:port to listen on; port 0 picks a free one.
	Addr       string
	Partitions int
	// DataDir keeps the log (and committed offsets) on disk across
	// restarts; empty keeps everything in memory.
	DataDir string
	// SyncWrites fsyncs every produced batch before it is acknowledged, so
	// an ack survives the machine going down, not only the process (a
	// killed process loses nothing the kernel already has either way).
	SyncWrites bool
	Retention  time.Duration
}

// Start starts an embedded broker as StartLocal does, on any
// address and optionally fsyncing every write: what `hexride broker` serves.
func Start(o Options) (*Broker, error) {
	host, portStr, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("broker address %q: want host:port: %w", o.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("broker address %q: bad port", o.Addr)
	}
	partitions, retention, dataDir := o.Partitions, o.Retention, o.DataDir
	opts := []kfake.Opt{
		kfake.Ports(port),
		// kfake always asks for 127.0.0.1:port; this keeps the port and
		// puts the host asked for in its place.
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			_, p, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(host, p))
		}),
		kfake.GroupMinSessionTimeout(time.Second),
	}
	// kfake keeps a partition's log in segment files (in memory unless
	// dataDir is set) and frees a segment only once every batch in it has
	// expired. At its default of 100 MiB, a segment of a quiet partition
	// holds everything since it was opened: the demo's memory would not be
	// bounded by retention for hours. 1 MiB segments (Kafka's smallest)
	// free memory in small steps and keep the copies kfake makes as an
	// in-memory segment grows short.
	topicConfigs := map[string]string{"segment.bytes": strconv.Itoa(segmentBytes)}
	if retention > 0 {
		// kfake applies retention on a ticker that runs only for topics
		// with a retention setting of their own, every
		// log.cleaner.backoff.ms (an hour by default).
		check := max(retention/10, time.Second)
		opts = append(opts, kfake.BrokerConfigs(map[string]string{"log.cleaner.backoff.ms": strconv.FormatInt(check.Milliseconds(), 10)}))
		topicConfigs["retention.ms"] = strconv.FormatInt(retention.Milliseconds(), 10)
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
		if o.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka broker: %w", err)
	}
	for _, t := range events.Topics {
		// A topic kept in dataDir from an earlier run already exists.
		if err := c.CreateTopic(t, int32(partitions), topicConfigs); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			c.Close()
			return nil, fmt.Errorf("create topic %s on the embedded broker: %w", t, err)
		}
	}
	return &Broker{c: c}, nil
}

// Addrs are the broker addresses to give kafka-go.
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Close stops the broker.
func (b *Broker) Close() { b.c.Close() }

// ForPlatform starts a broker on a free loopback port for the one-command
// run (platform.Options.DevBroker).
func ForPlatform(partitions int, retention time.Duration) ([]string, func(), error) {
	b, err := StartLocal(0, partitions, "", retention)
	if err != nil {
		return nil, nil, err
	}
	return b.Addrs(), b.Close, nil
}
