package gateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/hexride/hexride/geo"
	"github.com/hexride/hexride/protocol"
)

// Why a location was refused, the reason label of locationsRefused.
const (
	refusedSpeed     = "speed"
	refusedClockSkew = "clock_skew"
)

var locationsRefused = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "hexride_gateway_locations_refused_total",
	Help: "Driver locations refused as implausible and never published, by reason (speed, clock_skew).",
}, []string{"reason"})

// Resolved once: a refusal should not pay for a label lookup, and neither
// should the first refusal's metric appear only after it.
var (
	refusedSpeedTotal     = locationsRefused.WithLabelValues(refusedSpeed)
	refusedClockSkewTotal = locationsRefused.WithLabelValues(refusedClockSkew)
)

const (
	// DefaultMaxSpeedKMH is Config.MaxSpeedKMH's default: faster than any
	// car on a city's roads, slower than a spoofed jump across town.
	DefaultMaxSpeedKMH = 250
	// atAheadLeeway and atMaxAge bound a location's optional at against
	// the gateway's clock: a phone's clock a little fast is normal, a
	// position from the future or minutes old is not where the driver is.
	atAheadLeeway = 30 * time.Second
	atMaxAge      = 5 * time.Minute
	// locationSlackM is the most distance a driver may bank beyond what the
	// speed limit allows since its last accepted location: GPS error of a
	// few tens of metres, and pings a phone held back and sends together
	// (they arrive at once, so their steps take no time at the gateway).
	// It is a balance carried from one location to the next, never a
	// fresh allowance per frame, so 20 frames a second cannot creep a
	// driver along at 20 × slack a second.
	locationSlackM = 250
)

// lastFix is a session's last accepted location, kept on the socket:
// the reader goroutine is the only one that touches it, so it needs no
// lock, and it costs nothing to look up. What it does not cover: a driver
// with two sockets (two phones, or a reconnect) gets a fresh first
// location on each, so a jump between sockets is not checked. Catching that
// needs the last position per driver across sockets and gateway replicas
// (Redis, or the supply index downstream).
type lastFix struct {
	ok       bool
	pos      geo.LatLng
	received time.Time // the gateway's clock, not the phone's at
	spareM   float64   // unused allowance, at most locationSlackM
}

// checkLocation refuses a driver's location whose at is far from the
// gateway's clock, or which is farther from the session's last accepted
// location than maxKMH allows in the time between their arrivals. The
// first location of a session is accepted. An accepted location becomes
// the last one. The accepting path does not allocate.
func checkLocation(last *lastFix, f *protocol.Frame, now time.Time, maxKMH float64) *protocol.Error {
	if f.At != "" {
		// validate has already parsed it; this cannot fail.
		at, err := time.Parse(time.RFC3339Nano, f.At)
		if err != nil {
			refusedClockSkewTotal.Inc()
			return badRequest("at must be an RFC 3339 time")
		}
		if ahead := at.Sub(now); ahead > atAheadLeeway {
			refusedClockSkewTotal.Inc()
			return badRequest("at is %s ahead of the gateway's clock (at most %s allowed): check the phone's clock",
				ahead.Round(time.Second), atAheadLeeway)
		}
		if age := now.Sub(at); age > atMaxAge {
			refusedClockSkewTotal.Inc()
			return badRequest("at is %s behind the gateway's clock (at most %s allowed): a stale position, or the phone's clock is wrong",
				age.Round(time.Second), atMaxAge)
		}
	}
	pos := geo.LatLng{Lat: *f.Lat, Lng: *f.Lng}
	if !last.ok {
		*last = lastFix{ok: true, pos: pos, received: now, spareM: locationSlackM}
		return nil
	}
	dt := now.Sub(last.received).Seconds()
	if dt < 0 {
		dt = 0 // times without a monotonic reading (tests) may run backwards
	}
	allowed := maxKMH/3.6*dt + last.spareM
	d := geo.PlanarDistanceM(last.pos, pos)
	if d > allowed {
		refusedSpeedTotal.Inc()
		return badRequest("location is %.0f m from the last accepted one, received %.1f s earlier: faster than %g km/h",
			d, dt, maxKMH)
	}
	*last = lastFix{ok: true, pos: pos, received: now, spareM: min(allowed-d, locationSlackM)}
	return nil
}
