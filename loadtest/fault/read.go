package fault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	kafkago "github.com/segmentio/kafka-go"

	ev "github.com/hexride/hexride/events"
	"github.com/hexride/hexride/protocol"
	"github.com/hexride/hexride/ride"
)

// ReadLog reads every topic from its first offset to its end straight off
// the partition leaders: no consumer group, nothing committed, so reading
// changes nothing the services see. It fills h's log fields and returns the
// records read per topic.
func ReadLog(ctx context.Context, broker string, h *History) (map[string]int, error) {
	perTopic := map[string]int{}
	conn, err := kafkago.DialContext(ctx, "tcp", broker)
	if err != nil {
		return nil, fmt.Errorf("dial broker %s: %w", broker, err)
	}
	defer conn.Close()
	for _, topic := range ev.Topics {
		parts, err := conn.ReadPartitions(topic)
		if err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", topic, err)
		}
		for _, p := range parts {
			n, err := readPartition(ctx, broker, topic, p.ID, func(v []byte) { decodeInto(topic, v, h) })
			if err != nil {
				return nil, err
			}
			perTopic[topic] += n
		}
	}
	return perTopic, nil
}

func readPartition(ctx context.Context, broker, topic string, partition int, each func([]byte)) (int, error) {
	conn, err := kafkago.DialLeader(ctx, "tcp", broker, topic, partition)
	if err != nil {
		return 0, fmt.Errorf("dial leader of %s/%d: %w", topic, partition, err)
	}
	defer conn.Close()
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return 0, fmt.Errorf("offsets of %s/%d: %w", topic, partition, err)
	}
	if _, err := conn.Seek(first, kafkago.SeekAbsolute); err != nil {
		return 0, fmt.Errorf("seek %s/%d to %d: %w", topic, partition, first, err)
	}
	n, off := 0, first
	for off < last {
		if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return n, err
		}
		b := conn.ReadBatch(1, 32<<20)
		for {
			m, err := b.ReadMessage()
			if err != nil {
				break
			}
			each(m.Value)
			n++
			off = m.Offset + 1
		}
		if err := b.Close(); err != nil && off < last {
			return n, fmt.Errorf("read %s/%d at %d of %d: %w", topic, partition, off, last, err)
		}
	}
	return n, nil
}

// decodeInto keeps what the checker needs of one record.
func decodeInto(topic string, v []byte, h *History) {
	ds, err := ev.DecodeRecord(v)
	if err != nil {
		h.Undecodable++
		return
	}
	for _, d := range ds {
		if d.Err != nil {
			h.Undecodable++
			continue
		}
		e := d.Envelope
		switch {
		case topic == ev.TopicTripEvents && e.Type == ev.TypeTripUpdated:
			var u ride.TripUpdated
			if json.Unmarshal(e.Payload, &u) != nil {
				h.Undecodable++
				continue
			}
			h.TripEvents = append(h.TripEvents, TripEvent{Trip: u.Trip, Cause: u.Cause})
		case topic == ev.TopicUserPushes && e.Type == ev.TypePush:
			var p protocol.Push
			var m protocol.TripMessage
			if json.Unmarshal(e.Payload, &p) != nil || json.Unmarshal(p.Message, &m) != nil {
				h.Undecodable++
				continue
			}
			if m.Type == protocol.PushTrip {
				h.LogPushes = append(h.LogPushes, LogPush{User: p.UserID, TripID: m.TripID, State: m.State, Version: m.Version})
			}
		case topic == ev.TopicDeadLetters && e.Type == ev.TypeDeadLetter:
			var dl ev.DeadLetter
			if json.Unmarshal(e.Payload, &dl) != nil {
				h.Undecodable++
				continue
			}
			h.DeadLetters = append(h.DeadLetters, dl)
		}
	}
}

// ReadStore reads the final Redis state the checker needs.
func ReadStore(ctx context.Context, rdb *redis.Client) (Store, error) {
	s := Store{Trips: map[string]StoredTrip{}, Claims: map[string]string{}, Reservations: map[string]Reservation{},
		RiderTrips: map[string]string{}}
	err := scan(ctx, rdb, "trip:*", func(key string) error {
		vals, err := rdb.HMGet(ctx, key, "v", "json").Result()
		if err != nil {
			return fmt.Errorf("read %s: %w", key, err)
		}
		var st StoredTrip
		if v, ok := vals[0].(string); ok {
			_, _ = fmt.Sscan(v, &st.V)
		}
		if j, ok := vals[1].(string); ok {
			if err := json.Unmarshal([]byte(j), &st.Trip); err != nil {
				return fmt.Errorf("decode %s: %w", key, err)
			}
		}
		s.Trips[strings.TrimPrefix(key, "trip:")] = st
		return nil
	})
	if err == nil {
		// A claim holds "trip-id rider-id"; the trip is what it names.
		err = scanStrings(ctx, rdb, "driver:*:trip", func(k, v string) {
			trip, _, _ := strings.Cut(v, " ")
			s.Claims[strings.TrimSuffix(strings.TrimPrefix(k, "driver:"), ":trip")] = trip
		})
	}
	if err == nil {
		err = scanStrings(ctx, rdb, "rider:*:trip", func(k, v string) {
			s.RiderTrips[strings.TrimSuffix(strings.TrimPrefix(k, "rider:"), ":trip")] = v
		})
	}
	if err == nil {
		err = scan(ctx, rdb, "dispatch-driver:*", func(key string) error {
			v, err := rdb.Get(ctx, key).Result()
			if errors.Is(err, redis.Nil) {
				return nil // expired between the scan and the read
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", key, err)
			}
			ttl, err := rdb.PTTL(ctx, key).Result()
			if err != nil {
				return fmt.Errorf("ttl of %s: %w", key, err)
			}
			s.Reservations[strings.TrimPrefix(key, "dispatch-driver:")] = Reservation{TripID: v, TTL: ttl}
			return nil
		})
	}
	if err != nil {
		return s, err
	}
	s.Searching, err = rdb.ZRange(ctx, "trips:searching", 0, -1).Result()
	if err != nil {
		return s, fmt.Errorf("read trips:searching: %w", err)
	}
	return s, nil
}

func scan(ctx context.Context, rdb *redis.Client, match string, each func(string) error) error {
	it := rdb.Scan(ctx, 0, match, 1000).Iterator()
	for it.Next(ctx) {
		if err := each(it.Val()); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("scan %s: %w", match, err)
	}
	return nil
}

func scanStrings(ctx context.Context, rdb *redis.Client, match string, each func(k, v string)) error {
	return scan(ctx, rdb, match, func(k string) error {
		v, err := rdb.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", k, err)
		}
		each(k, v)
		return nil
	})
}
