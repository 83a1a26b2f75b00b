package kafka

import (
	"context"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Partitioner says which partition a key's events are on: kafka-go's Hash
// balancer over the topic's partitions, as the producer's writers compute
// it. The ping batcher places records with it, and readers of one key (the
// audit of one trip) find that key's partition without reading the others.
// It is safe for concurrent use.
type Partitioner struct {
	ids  []int
	hash kafkago.Hash
}

// NewPartitioner is a Partitioner for a topic of n partitions. kafka-go's
// writer balances over the partition ids in order, 0 to n-1.
func NewPartitioner(n int) *Partitioner {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i
	}
	return &Partitioner{ids: ids}
}

// Of returns the partition of key.
func (p *Partitioner) Of(key []byte) int {
	return p.hash.Balance(kafkago.Message{Key: key}, p.ids...)
}

// Partitions reads how many partitions topic has from the brokers.
func Partitions(ctx context.Context, brokers []string, topic string) (int, error) {
	c := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	md, err := c.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("read the partitions of %s: %w", topic, err)
	}
	for _, t := range md.Topics {
		if t.Name == topic && t.Error == nil && len(t.Partitions) > 0 {
			return len(t.Partitions), nil
		}
	}
	return 0, fmt.Errorf("read the partitions of %s: the brokers know none", topic)
}
