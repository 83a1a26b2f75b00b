// Package audit reads hexride's event log back, apart from the services:
// the history of one trip (its commands, transitions, pushes and dead
// letters, in log order) and the replay of every trip's state from
// trip.events into an empty store, compared with the live one. The log is
// the system of record; this package is how that claim is checked.
//
// It only reads: partitions are read from their first offset to the end
// they had when the read began, with kafka-go readers that belong to no
// consumer group, so nothing is committed, no group is joined, and no
// producer exists here to publish anything.
package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// span is the part of one partition that is read: from its first offset
// (the oldest not yet expired) to its end when the read began.
type span struct {
	topic      string
	partition  int
	first, end int64
}

func (s span) String() string {
	return fmt.Sprintf("%s/%d [%d,%d)", s.topic, s.partition, s.first, s.end)
}

// client answers metadata and offset requests; its timeout also bounds
// how long an unreachable broker takes to say so.
func client(brokers []string) *kafkago.Client {
	return &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
}

func allPartitions(n int) []int {
	ps := make([]int, n)
	for i := range ps {
		ps[i] = i
	}
	return ps
}

// spansOf reads the first and end offsets of the given partitions.
func spansOf(ctx context.Context, brokers []string, topic string, partitions []int) ([]span, error) {
	var reqs []kafkago.OffsetRequest
	for _, p := range partitions {
		reqs = append(reqs, kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p))
	}
	res, err := client(brokers).ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	got := map[int]kafkago.PartitionOffsets{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("list offsets of %s partition %d: %w", topic, po.Partition, po.Error)
		}
		got[po.Partition] = po
	}
	out := make([]span, 0, len(partitions))
	for _, p := range partitions {
		po, ok := got[p]
		if !ok {
			return nil, fmt.Errorf("list offsets of %s partition %d: no answer", topic, p)
		}
		out = append(out, span{topic: topic, partition: p, first: po.FirstOffset, end: po.LastOffset})
	}
	return out, nil
}

// readSpan calls fn with each record of s in order. It reads through a
// plain connection to the partition's leader: no consumer group, so
// nothing is joined or committed, and no long poll past the end (a
// kafka-go Reader waits out a fetch of what is not there yet before it
// closes, three quarters of a second per partition).
func readSpan(ctx context.Context, brokers []string, s span, fn func(kafkago.Message) error) error {
	if s.end <= s.first {
		return nil
	}
	d := &kafkago.Dialer{Timeout: 10 * time.Second}
	var conn *kafkago.Conn
	var err error
	for _, b := range brokers {
		if conn, err = d.DialLeader(ctx, "tcp", b, s.topic, s.partition); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("connect to the leader of %s: %w", s, err)
	}
	defer conn.Close()
	// A connection's reads take no context: its end wakes them instead.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	for off := s.first; off < s.end; {
		if _, err := conn.Seek(off, kafkago.SeekAbsolute|kafkago.SeekDontCheck); err != nil {
			return fmt.Errorf("read %s at %d: %w", s, off, err)
		}
		if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return fmt.Errorf("read %s at %d: %w", s, off, err)
		}
		batch := conn.ReadBatchWith(kafkago.ReadBatchConfig{MinBytes: 1, MaxBytes: 10 << 20, MaxWait: time.Second})
		from := off
		for off < s.end {
			m, err := batch.ReadMessage()
			if err != nil {
				break // the end of this fetch, or its error, which Close returns
			}
			// Offsets may skip (compaction, transaction markers): the next
			// read starts after the last record seen.
			off = m.Offset + 1
			if err := fn(m); err != nil {
				_ = batch.Close()
				return err
			}
		}
		if err := batch.Close(); err != nil && !errors.Is(err, io.EOF) {
			if ctx.Err() != nil {
				return fmt.Errorf("read %s at %d: %w", s, from, ctx.Err())
			}
			return fmt.Errorf("read %s at %d: %w", s, from, err)
		}
		if off == from {
			return fmt.Errorf("read %s at %d: the broker returned nothing before the end", s, from)
		}
	}
	return nil
}

// errNoBrokers is what a caller without broker addresses gets.
var errNoBrokers = errors.New("no Kafka brokers given (-brokers or KAFKA_BROKERS)")
