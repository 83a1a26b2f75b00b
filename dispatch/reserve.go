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
type RedisReservations struct {
	RDB redis.UniversalClient
	// ClaimKey, if set, names tripstate's claim on a driver (set with the
	// acceptance, cleared when the trip ends): a claimed driver is on a
	// trip and is never reserved, whatever this or any replica remembers.
	// A hold is taken when the dispatcher sees the acceptance, which a
	// replica that was down or is taking over sees late or not at all.
	ClaimKey func(driverID string) string
}

func reservationKey(driverID string) string { return "dispatch-driver:" + driverID }

// reserveScript takes a driver for a trip unless it is claimed by a trip
// (KEYS[2]) or reserved for another. KEYS: reservation, claim. ARGV: trip,
// ttl ms.
var reserveScript = redis.NewScript(`
if KEYS[2] ~= KEYS[1] and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if cur == ARGV[1] then return 1 end
return 0`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Reserve implements Reservations. A reservation already ours (a
// re-decision for the same trip) counts as reserved.
func (r RedisReservations) Reserve(ctx context.Context, driverID, tripID string, ttl time.Duration) (bool, error) {
	claim := reservationKey(driverID) // the script skips the check when both keys are one
	if r.ClaimKey != nil {
		claim = r.ClaimKey(driverID)
	}
	n, err := reserveScript.Run(ctx, r.RDB, []string{reservationKey(driverID), claim}, tripID, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("reserve driver %s for trip %s: %w", driverID, tripID, err)
	}
	return n == 1, nil
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
