package dispatch

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reservations make "one driver, one open offer or trip" hold across
// dispatcher replicas: each replica sees only its own trips, so without a
// shared record two replicas could offer one driver two rides at once, or
// offer a ride to a driver busy with another replica's trip.
type Reservations interface {
	// Reserve takes the driver for an offer of trip, for ttl; false if the
	// driver is reserved for another trip.
	Reserve(ctx context.Context, driverID, tripID string, ttl time.Duration) (bool, error)
	// Hold keeps the driver for trip with no expiry (the driver accepted).
	Hold(ctx context.Context, driverID, tripID string) error
	// Release frees the driver if it is reserved or held for trip.
	Release(ctx context.Context, driverID, tripID string) error
}

// RedisReservations keeps reservations in Redis under dispatch-driver:{id}.
type RedisReservations struct{ RDB redis.UniversalClient }

func reservationKey(driverID string) string { return "dispatch-driver:" + driverID }

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Reserve implements Reservations.
func (r RedisReservations) Reserve(ctx context.Context, driverID, tripID string, ttl time.Duration) (bool, error) {
	ok, err := r.RDB.SetNX(ctx, reservationKey(driverID), tripID, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("reserve driver %s for trip %s: %w", driverID, tripID, err)
	}
	if !ok { // already ours (a re-decision for the same trip) counts as reserved
		cur, err := r.RDB.Get(ctx, reservationKey(driverID)).Result()
		if err != nil && err != redis.Nil {
			return false, fmt.Errorf("read reservation of driver %s: %w", driverID, err)
		}
		return cur == tripID, nil
	}
	return true, nil
}

// Hold implements Reservations.
func (r RedisReservations) Hold(ctx context.Context, driverID, tripID string) error {
	if err := r.RDB.Set(ctx, reservationKey(driverID), tripID, 0).Err(); err != nil {
		return fmt.Errorf("hold driver %s for trip %s: %w", driverID, tripID, err)
	}
	return nil
}

// Release implements Reservations.
func (r RedisReservations) Release(ctx context.Context, driverID, tripID string) error {
	if err := releaseScript.Run(ctx, r.RDB, []string{reservationKey(driverID)}, tripID).Err(); err != nil {
		return fmt.Errorf("release driver %s from trip %s: %w", driverID, tripID, err)
	}
	return nil
}
