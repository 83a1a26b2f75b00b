package events

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedBroker is a Kafka-protocol broker inside this process (kfake),
// listening on a real loopback TCP port. The services talk to it with the
// same kafka-go code that talks to a real cluster.
type EmbeddedBroker struct {
	c *kfake.Cluster
}

// StartEmbeddedBroker listens on 127.0.0.1:port (0 picks a free port) with
// every platform topic created with the given number of partitions. A
// non-empty dataDir keeps the log on disk across restarts.
func StartEmbeddedBroker(port, partitions int, dataDir string) (*EmbeddedBroker, error) {
	opts := []kfake.Opt{
		kfake.Ports(port),
		kfake.SeedTopics(int32(partitions), Topics...),
		kfake.GroupMinSessionTimeout(time.Second),
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka broker: %w", err)
	}
	return &EmbeddedBroker{c: c}, nil
}

// Addrs are the broker addresses to give kafka-go.
func (b *EmbeddedBroker) Addrs() []string { return b.c.ListenAddrs() }

// Close stops the broker.
func (b *EmbeddedBroker) Close() { b.c.Close() }
