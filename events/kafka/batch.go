package kafka

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hexride/hexride/events"
	kafkago "github.com/segmentio/kafka-go"
)

// pingBatcher puts many driver events in one Kafka record: all those of one
// partition that arrive within the linger, up to pingBatch, as a JSON array
// of envelopes (a lone event is written as itself). Every record costs the
// writer, the broker and each of the three consumer groups the same
// whatever it holds, and a ping is small: one ping per record was about
// 20 µs of CPU per ping, fifty to a record about 5 (BenchmarkPingPath).
//
// A driver's events keep their order: they all map to one partition (the
// key's hash, as kafka-go's Hash balancer computes it), wait in that
// partition's batch in arrival order, and a partition's records are handed
// to the writer in order. Consumers unpack a record (DecodeRecord) and see
// its events one by one, as before.
type pingBatcher struct {
	brokers []string
	linger  time.Duration
	w       *kafkago.Writer
	// done is the writer's completion, called directly for a record the
	// writer refused.
	done func([]kafkago.Message, error)

	mu      sync.Mutex
	parts   *Partitioner // of driver.events; nil until read
	pending [][]batched
	timer   *time.Timer
}

// batched is one event waiting in a batch; a is nil for fire and forget.
type batched struct {
	key, value []byte
	a          *acks
}

// batchRecord travels in a record's WriterData: its partition, for the
// writer's balancer, and its events, for the completion.
type batchRecord struct {
	partition int
	events    []batched
}

// add queues msgs (all for driver.events) in their partitions' batches.
func (b *pingBatcher) add(ctx context.Context, msgs []kafkago.Message, a *acks) error {
	if err := b.learnPartitions(ctx); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	idle := true
	for _, evs := range b.pending {
		idle = idle && len(evs) == 0
	}
	var full []int
	for _, m := range msgs {
		p := b.parts.Of(m.Key)
		b.pending[p] = append(b.pending[p], batched{key: m.Key, value: m.Value, a: a})
		if len(b.pending[p]) == pingBatch {
			full = append(full, p)
		}
	}
	for _, p := range full {
		b.flushLocked(p)
	}
	if idle {
		if b.timer == nil {
			b.timer = time.AfterFunc(b.linger, b.flushAll)
		} else {
			b.timer.Reset(b.linger)
		}
	}
	return nil
}

// learnPartitions reads how many partitions driver.events has, once.
func (b *pingBatcher) learnPartitions(ctx context.Context) error {
	b.mu.Lock()
	known := b.parts != nil
	b.mu.Unlock()
	if known {
		return nil
	}
	n, err := Partitions(ctx, b.brokers, events.TopicDriverEvents)
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.parts == nil {
		b.parts, b.pending = NewPartitioner(n), make([][]batched, n)
	}
	b.mu.Unlock()
	return nil
}

// flushAll writes every partition's batch; the linger timer calls it.
func (b *pingBatcher) flushAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for p := range b.pending {
		b.flushLocked(p)
	}
}

// flushLocked hands partition p's batch to the writer as one record.
func (b *pingBatcher) flushLocked(p int) {
	evs := b.pending[p]
	if len(evs) == 0 {
		return
	}
	b.pending[p] = nil
	value := evs[0].value
	if len(evs) > 1 {
		size := 1
		for _, e := range evs {
			size += len(e.value) + 1
		}
		buf := bytes.NewBuffer(make([]byte, 0, size))
		buf.WriteByte('[')
		for i, e := range evs {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(e.value)
		}
		buf.WriteByte(']')
		value = buf.Bytes()
	}
	m := kafkago.Message{Topic: events.TopicDriverEvents, Key: evs[0].key, Value: value,
		WriterData: &batchRecord{partition: p, events: evs}}
	if err := b.w.WriteMessages(context.Background(), m); err != nil {
		// Refused before it was queued (the writer is closed): no
		// completion will come, so it is reported here.
		b.done([]kafkago.Message{m}, fmt.Errorf("write a batch of %d driver events: %w", len(evs), err))
	}
}

// close writes what is waiting; the writer is closed after it.
func (b *pingBatcher) close() {
	b.mu.Lock()
	if b.timer != nil {
		b.timer.Stop()
	}
	b.mu.Unlock()
	b.flushAll()
}

// batchBalancer puts a batch record on the partition it was made for.
type batchBalancer struct{ hash kafkago.Hash }

func (bb *batchBalancer) Balance(m kafkago.Message, partitions ...int) int {
	if rec, ok := m.WriterData.(*batchRecord); ok {
		for _, p := range partitions {
			if p == rec.partition {
				return p
			}
		}
	}
	return bb.hash.Balance(m, partitions...)
}
