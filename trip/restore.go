package trip

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hexride/hexride/ride"
	"github.com/redis/go-redis/v9"
)

// TripKey is the Redis key of a trip's hash {v, json, last}, for readers
// outside tripstate (the audit's replay compares stores by it).
func TripKey(id string) string { return tripKey(id) }

// encodeHash encodes the json and last fields of a trip's hash; the apply
// script and Restore write the same bytes for the same update.
func encodeHash(u ride.TripUpdated) (tripJSON, updJSON []byte, err error) {
	if tripJSON, err = json.Marshal(u.Trip); err != nil {
		return nil, nil, fmt.Errorf("encode trip %s: %w", u.Trip.TripID, err)
	}
	if updJSON, err = json.Marshal(u); err != nil {
		return nil, nil, fmt.Errorf("encode update of trip %s: %w", u.Trip.TripID, err)
	}
	return tripJSON, updJSON, nil
}

// Restore writes each update's trip as the stored state of that trip, in
// the layout the apply script writes (a finished trip expires as it does
// there), without the checks of a transition: it is for rebuilding a store
// from trip.events (the audit's replay), never for a live one. The
// driver claims, riders' active trips, the searching set and the applied
// event ids are not rebuilt.
func (s *Store) Restore(ctx context.Context, updates []ride.TripUpdated) error {
	const chunk = 500 // commands per pipeline: one round trip each
	for len(updates) > 0 {
		n := min(chunk, len(updates))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, u := range updates[:n] {
				t := u.Trip
				tripJSON, updJSON, err := encodeHash(u)
				if err != nil {
					return err
				}
				p.HSet(ctx, tripKey(t.TripID), "v", t.Version, "json", tripJSON, "last", updJSON)
				if ride.Terminal(t.State) {
					p.Expire(ctx, tripKey(t.TripID), terminalRetention)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("restore %d trips: %w", n, err)
		}
		updates = updates[n:]
	}
	return nil
}
