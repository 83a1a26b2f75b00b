// Package supply owns the durable record of what drivers have declared about
// themselves: whether each is available. Availability is said once and holds
// until it is said again, so a view of the drivers rebuilt from the last
// minutes of driver.events (the dispatcher's index, the live map) would
// miss it; the gateway records each acknowledged change here, and those views
// start from this record and then read the log.
package supply

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// availabilityKey is one hash, driver id → "<unix ms of the change>:<0|1>".
const availabilityKey = "drivers:availability"

// setScript keeps the newest change of each driver: two sockets of one
// driver, or a resend racing a later change, must not put an older one back.
var setScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local at = tonumber(string.match(cur, '^(%d+):'))
  if at and at > tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
return 1`)

// Record is the availability record in Redis.
type Record struct{ RDB redis.UniversalClient }

// Set records that driverID said at time at whether it is available, unless
// a later change is already recorded.
func (r Record) Set(ctx context.Context, driverID string, at time.Time, available bool) error {
	v := "0"
	if available {
		v = "1"
	}
	if err := setScript.Run(ctx, r.RDB, []string{availabilityKey}, driverID, at.UnixMilli(), v).Err(); err != nil {
		return fmt.Errorf("record availability of driver %s: %w", driverID, err)
	}
	return nil
}

// scanCount is how many fields one HSCAN step asks for: large enough that
// 100,000 drivers take a few dozen round trips, small enough that no step
// holds Redis for long.
const scanCount = 5000

// Available returns every driver whose last recorded change made it
// available.
func (r Record) Available(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	var cursor uint64
	for {
		kv, next, err := r.RDB.HScan(ctx, availabilityKey, cursor, "", scanCount).Result()
		if err != nil {
			return nil, fmt.Errorf("read driver availability: %w", err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			_, v, ok := strings.Cut(kv[i+1], ":")
			if !ok {
				return nil, fmt.Errorf("read driver availability: driver %s has %q, want <ms>:<0|1>", kv[i], kv[i+1])
			}
			if on, err := strconv.ParseBool(v); err == nil && on {
				out[kv[i]] = true
			}
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}
