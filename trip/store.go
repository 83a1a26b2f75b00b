package trip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hexride/hexride/ride"
	"github.com/redis/go-redis/v9"
)

// Redis keys. A trip is a hash {v: version, json: Trip, last: TripUpdated};
// the version field lets the apply script compare-and-set without decoding.
func tripKey(id string) string        { return "trip:" + id }
func eventKey(id string) string       { return "trip-event:" + id }
func driverClaimKey(id string) string { return DriverClaimKey(id) }
func riderTripKey(id string) string   { return "rider:" + id + ":trip" }

// searchingKey is a sorted set of trips still looking for a driver, scored by
// the unix millisecond at which tripstate ends them itself.
const searchingKey = "trips:searching"

const (
	// eventMemory is how long an applied event id is remembered for
	// de-duplication; far longer than any redelivery.
	eventMemory = 24 * time.Hour
	// terminalRetention is how long a finished trip stays readable.
	terminalRetention = 7 * 24 * time.Hour
)

// applyScript stores one transition atomically with everything that must
// change with it, so that no replica race can give a driver two trips or a
// trip two drivers:
//   - the event id is not yet applied (else "dup" and the version it made);
//   - the stored version is the one the transition was computed from
//     (else "stale");
//   - on claim, the driver is free or already this trip's (else "busy");
//   - on create, the rider has no other active trip (else "rider_busy").
//
// KEYS: trip, event, driver claim, rider trip.
// ARGV: expected version, new version, trip json, update json, trip id,
// claim op (claim|release|-), claim value, rider op (set|del|-), event ttl
// seconds, terminal ttl seconds (0 = keep), search op (add|rem|-), search
// deadline (unix ms). KEYS[5] is the searching set.
var applyScript = redis.NewScript(`
local done = redis.call('GET', KEYS[2])
if done then return {'dup', done} end
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return {'stale', tostring(v)} end
if ARGV[6] == 'claim' then
  local c = redis.call('GET', KEYS[3])
  if c and c ~= ARGV[7] then return {'busy', c} end
end
if ARGV[8] == 'set' then
  local c = redis.call('GET', KEYS[4])
  if c and c ~= ARGV[5] then return {'rider_busy', c} end
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'json', ARGV[3], 'last', ARGV[4])
if ARGV[6] == 'claim' then
  redis.call('SET', KEYS[3], ARGV[7])
elseif ARGV[6] == 'release' then
  if redis.call('GET', KEYS[3]) == ARGV[7] then redis.call('DEL', KEYS[3]) end
end
if ARGV[8] == 'set' then
  redis.call('SET', KEYS[4], ARGV[5])
elseif ARGV[8] == 'del' then
  if redis.call('GET', KEYS[4]) == ARGV[5] then redis.call('DEL', KEYS[4]) end
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', tonumber(ARGV[9]))
if tonumber(ARGV[10]) > 0 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[10])) end
if ARGV[11] == 'add' then
  redis.call('ZADD', KEYS[5], tonumber(ARGV[12]), ARGV[5])
elseif ARGV[11] == 'rem' then
  redis.call('ZREM', KEYS[5], ARGV[5])
end
return {'ok', ARGV[2]}
`)

// Store keeps trips in Redis. It is safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
}

// NewStore wraps a Redis client.
func NewStore(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// Trip loads a trip; ok is false if there is none.
func (s *Store) Trip(ctx context.Context, id string) (ride.Trip, bool, error) {
	t, _, ok, err := s.load(ctx, id)
	return t, ok, err
}

func (s *Store) load(ctx context.Context, id string) (ride.Trip, *ride.TripUpdated, bool, error) {
	vals, err := s.rdb.HMGet(ctx, tripKey(id), "json", "last").Result()
	if err != nil {
		return ride.Trip{}, nil, false, fmt.Errorf("load trip %s: %w", id, err)
	}
	return decodeTrip(id, vals)
}

// decodeTrip decodes the json and last fields of a trip's hash.
func decodeTrip(id string, vals []any) (ride.Trip, *ride.TripUpdated, bool, error) {
	raw, ok := vals[0].(string)
	if !ok {
		return ride.Trip{}, nil, false, nil
	}
	var t ride.Trip
	if err := json.Unmarshal([]byte(raw), &t); err != nil {
		return ride.Trip{}, nil, false, fmt.Errorf("decode stored trip %s: %w", id, err)
	}
	var last *ride.TripUpdated
	if rawLast, ok := vals[1].(string); ok {
		last = &ride.TripUpdated{}
		if err := json.Unmarshal([]byte(rawLast), last); err != nil {
			return ride.Trip{}, nil, false, fmt.Errorf("decode last update of trip %s: %w", id, err)
		}
	}
	return t, last, true, nil
}

// snapshot is what a command is decided on.
type snapshot struct {
	// applied says the command's event was applied before, making the
	// trip appliedVersion.
	applied        bool
	appliedVersion int64
	trip           ride.Trip
	last           *ride.TripUpdated
	exists         bool
}

// snapshot reads whether event eventID was applied and the trip it is for
// in one round trip: a command on the request path waits for each.
func (s *Store) snapshot(ctx context.Context, eventID, tripID string) (snapshot, error) {
	var get *redis.StringCmd
	var hm *redis.SliceCmd
	// Pipelined's own error is the first command's, redis.Nil included;
	// each command's is checked below.
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, eventKey(eventID))
		hm = p.HMGet(ctx, tripKey(tripID), "json", "last")
		return nil
	})
	var snap snapshot
	switch v, err := get.Result(); {
	case err == nil:
		snap.applied = true
		snap.appliedVersion, _ = strconv.ParseInt(v, 10, 64)
	case !errors.Is(err, redis.Nil):
		return snapshot{}, fmt.Errorf("check event %s: %w", eventID, err)
	}
	vals, err := hm.Result()
	if err != nil {
		return snapshot{}, fmt.Errorf("load trip %s: %w", tripID, err)
	}
	snap.trip, snap.last, snap.exists, err = decodeTrip(tripID, vals)
	return snap, err
}

// Ended reports, for each trip id, whether the trip has ended (or does
// not exist), in one round trip.
func (s *Store) Ended(ctx context.Context, ids []string) (map[string]bool, error) {
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = pipe.HGet(ctx, tripKey(id), "json")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read %d trips: %w", len(ids), err)
	}
	ended := make(map[string]bool, len(ids))
	for i, c := range cmds {
		raw, err := c.Result()
		if errors.Is(err, redis.Nil) {
			ended[ids[i]] = true
			continue
		} else if err != nil {
			return nil, fmt.Errorf("read trip %s: %w", ids[i], err)
		}
		var t struct {
			State string `json:"state"`
		}
		if err := json.Unmarshal([]byte(raw), &t); err != nil {
			return nil, fmt.Errorf("decode stored trip %s: %w", ids[i], err)
		}
		ended[ids[i]] = ride.Terminal(t.State)
	}
	return ended, nil
}

// CurrentTrip returns the user's active trip: as rider, the one they
// requested; as driver, the one they accepted.
func (s *Store) CurrentTrip(ctx context.Context, userID, role string) (ride.Trip, bool, error) {
	var tripID string
	switch role {
	case "rider":
		id, err := s.rdb.Get(ctx, riderTripKey(userID)).Result()
		if errors.Is(err, redis.Nil) {
			return ride.Trip{}, false, nil
		} else if err != nil {
			return ride.Trip{}, false, fmt.Errorf("current trip of rider %s: %w", userID, err)
		}
		tripID = id
	case "driver":
		id, _, ok, err := s.DriverClaim(ctx, userID)
		if err != nil || !ok {
			return ride.Trip{}, false, err
		}
		tripID = id
	default:
		return ride.Trip{}, false, nil
	}
	return s.Trip(ctx, tripID)
}

// DriverClaim returns the trip (and its rider) a driver is busy with, from
// acceptance until the trip ends.
func (s *Store) DriverClaim(ctx context.Context, driverID string) (tripID, riderID string, ok bool, err error) {
	claims, err := s.DriverClaims(ctx, []string{driverID})
	if err != nil {
		return "", "", false, err
	}
	c, ok := claims[driverID]
	return c.TripID, c.RiderID, ok, nil
}

// Claim is the trip (and its rider) a driver is busy with.
type Claim struct{ TripID, RiderID string }

// DriverClaims is DriverClaim for many drivers in one round trip; drivers
// with no claim are absent from the map.
func (s *Store) DriverClaims(ctx context.Context, driverIDs []string) (map[string]Claim, error) {
	if len(driverIDs) == 0 {
		return nil, nil
	}
	keys := make([]string, len(driverIDs))
	for i, id := range driverIDs {
		keys[i] = driverClaimKey(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("claims of %d drivers: %w", len(driverIDs), err)
	}
	claims := map[string]Claim{}
	for i, v := range vals {
		if str, ok := v.(string); ok {
			tripID, riderID, _ := strings.Cut(str, " ")
			claims[driverIDs[i]] = Claim{TripID: tripID, RiderID: riderID}
		}
	}
	return claims, nil
}

// result of an apply.
type applyResult int

const (
	applied applyResult = iota
	duplicate
	stale
	driverBusy
	riderBusy
)

// apply stores c atomically; see applyScript.
func (s *Store) apply(ctx context.Context, c Transition) (applyResult, error) {
	t := c.Update.Trip
	tripJSON, updJSON, err := encodeHash(c.Update)
	if err != nil {
		return 0, err
	}
	claimKey, claimVal := driverClaimKey("-"), ""
	if c.driverID != "" {
		claimKey, claimVal = driverClaimKey(c.driverID), t.TripID+" "+t.RiderID
	}
	var ttl int64
	if ride.Terminal(t.State) {
		ttl = int64(terminalRetention / time.Second)
	}
	searchOp := "-"
	switch {
	case !c.deadline.IsZero():
		searchOp = "add"
	case t.State != ride.StateRequested && t.State != ride.StateOffered:
		searchOp = "rem"
	}
	res, err := applyScript.Run(ctx, s.rdb,
		[]string{tripKey(t.TripID), eventKey(c.eventID), claimKey, riderTripKey(t.RiderID), searchingKey},
		c.from, t.Version, tripJSON, updJSON, t.TripID, c.claimOp, claimVal, c.riderOp,
		int64(eventMemory/time.Second), ttl, searchOp, c.deadline.UnixMilli()).StringSlice()
	if err != nil {
		return 0, fmt.Errorf("apply %s to trip %s: %w", c.Update.Cause, t.TripID, err)
	}
	switch res[0] {
	case "ok":
		return applied, nil
	case "dup":
		return duplicate, nil
	case "stale":
		return stale, nil
	case "busy":
		return driverBusy, nil
	case "rider_busy":
		return riderBusy, nil
	}
	return 0, fmt.Errorf("apply %s to trip %s: unexpected script answer %v", c.Update.Cause, t.TripID, res)
}

// overdue returns up to n trips whose own deadline has passed.
func (s *Store) overdue(ctx context.Context, now time.Time, n int64) ([]string, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, searchingKey, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: n}).Result()
	if err != nil {
		return nil, fmt.Errorf("read overdue searches: %w", err)
	}
	return ids, nil
}

// DriverClaimKey names the claim tripstate holds on a driver from the
// acceptance until the trip ends: the durable answer to "is this driver on
// a trip", which the dispatcher's reservations check.
func DriverClaimKey(driverID string) string { return "driver:" + driverID + ":trip" }
