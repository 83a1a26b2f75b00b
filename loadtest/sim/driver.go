package sim

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/hexride/hexride/protocol"
)

var locPool = sync.Pool{New: func() any { b := make([]byte, 0, 192); return &b }}

func itoa(i int) string { return strconv.Itoa(i) }

var stepNames = map[driverState]string{dAccepting: protocol.MsgOfferAccept, dArriving: protocol.MsgTripArrive, dStarting: protocol.MsgTripStart,
	dCompleting: protocol.MsgTripComplete}

func errStuck(sub, trip string, s driverState) error {
	return fmt.Errorf("driver %s got no trip push for trip %s after %s", sub, trip, stepNames[s])
}

type driverState uint8

const (
	dConnecting driverState = iota
	dCruising               // available, driving around
	dThinking               // an offer in hand, deciding
	dAccepting              // offer.accept sent, waiting for the trip push
	dToPickup               // driving to the pickup
	dArriving               // trip.arrive sent, waiting for ARRIVED
	dBoarding               // the rider is getting in
	dStarting               // trip.start sent, waiting for IN_PROGRESS
	dToDropoff              // driving to the drop-off
	dCompleting             // trip.complete sent, waiting for COMPLETED
	dStopped
)

// driver is a driver's phone: on duty from connection to the end of the run.
type driver struct {
	phone
	rng    *rand.Rand
	ping   time.Duration // this phone's location interval
	factor float64       // how this driver drives relative to the limits
	mv     mover
	moved  time.Time // when mv was last advanced

	state driverState
	gen   uint64 // bumped on every state change; stale timers check it
	pingT *time.Timer
	actT  *time.Timer

	tripID   string
	offerID  string
	offerExp time.Time
	pickup   int32
	dropoff  int32
	online   bool
}

func newDriver(r *runner, i int) *driver {
	d := &driver{rng: rand.New(rand.NewPCG(r.cfg.Seed, streamDriver+uint64(i)))}
	d.phone = phone{r: r, role: protocol.RoleDriver, sub: r.cfg.IDPrefix + "-d" + itoa(i), b: d, target: i % len(r.targets)}
	span := r.cfg.PingMax - r.cfg.PingMin
	d.ping = r.cfg.PingMin + time.Duration(d.rng.Float64()*float64(span))
	d.factor = 0.85 + 0.25*d.rng.Float64()
	start := r.city.RandomNode(d.rng)
	d.mv.x, d.mv.y = r.city.XYOf(start)
	d.mv.heading = float64(d.rng.IntN(4)) * 90
	return d
}

func (d *driver) setState(s driverState) {
	d.state = s
	d.gen++
	if d.actT != nil {
		d.actT.Stop()
		d.actT = nil
	}
}

// after runs f under the lock after delay, unless the state changed first.
func (d *driver) after(delay time.Duration, f func()) {
	g := d.gen
	d.actT = time.AfterFunc(delay, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen != g || d.done {
			return
		}
		f()
	})
}

// wait enters a state that waits for a trip push, with a watchdog.
func (d *driver) wait(s driverState) {
	d.setState(s)
	d.after(d.r.cfg.StepTimeout, func() {
		d.r.m.stuck.Add(1)
		d.r.m.clientFailure("stuck", errStuck(d.sub, d.tripID, s))
		d.cruise()
	})
}

func (d *driver) cruise() {
	d.setState(dCruising)
	d.tripID, d.offerID = "", ""
	if len(d.mv.path) == 0 {
		d.mv.path = d.r.city.Route(d.mv.at(d.r.city), d.r.city.RandomNode(d.rng))
	}
}

func (d *driver) connected(first bool, now time.Time) {
	if first {
		on := true
		d.commandLocked(protocol.Frame{Type: protocol.MsgAvailability, Available: &on})
		d.moved = now
		d.cruise()
		d.sendLocation(now)
		d.pingT = time.AfterFunc(d.nextPing(), d.tick)
		return
	}
	d.sendLocation(now) // a fresh fix after the gap
}

func (d *driver) nextPing() time.Duration {
	return time.Duration(float64(d.ping) * (0.9 + 0.2*d.rng.Float64()))
}

// tick is the phone's location timer: move, notice arrivals, report.
func (d *driver) tick() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return
	}
	now := time.Now()
	arrived := d.move(now)
	switch {
	case arrived && d.state == dToPickup:
		d.commandLocked(protocol.Frame{Type: protocol.MsgTripArrive, TripID: d.tripID})
		d.wait(dArriving)
	case arrived && d.state == dToDropoff:
		d.commandLocked(protocol.Frame{Type: protocol.MsgTripComplete, TripID: d.tripID})
		d.wait(dCompleting)
	}
	d.sendLocation(now)
	d.pingT.Reset(d.nextPing())
}

// move advances the car to now; it reports whether it reached the end of its
// path. A cruising car picks its next destination when it gets there.
func (d *driver) move(now time.Time) bool {
	dt := now.Sub(d.moved).Seconds() * d.r.cfg.Speedup
	d.moved = now
	switch d.state {
	case dCruising, dThinking, dAccepting, dToPickup, dToDropoff:
	default:
		d.mv.speed = 0 // waiting at the kerb
		return false
	}
	arrived := d.mv.advance(d.r.city, dt, d.factor)
	if arrived && d.state <= dAccepting {
		d.mv.path = d.r.city.Route(d.mv.at(d.r.city), d.r.city.RandomNode(d.rng))
		return false
	}
	return arrived
}

func (d *driver) sendLocation(now time.Time) {
	if d.c == nil {
		return
	}
	buf := locPool.Get().(*[]byte)
	b := appendLocation((*buf)[:0], d.r.city.LatLngOf(d.mv.x, d.mv.y), d.mv.heading, d.mv.speed, now)
	if d.writeLocked(b) == nil {
		d.r.m.pingsSent.Add(1)
	}
	*buf = b
	locPool.Put(buf)
}

func (d *driver) push(f *protocol.ServerFrame, now time.Time) {
	switch f.Type {
	case protocol.PushOffer:
		d.offer(f, now)
	case protocol.PushTrip:
		if f.TripID == d.tripID && d.tripID != "" {
			d.tripChanged(f.State, f.DriverID, now)
		}
	case protocol.PushResync:
		d.resync(f.Trip, now)
	}
}

func (d *driver) offer(f *protocol.ServerFrame, now time.Time) {
	d.r.m.offerReceived(f.PickupDistanceM)
	if d.state != dCruising {
		// Busy: a real app would not show it; answer at once.
		d.r.m.offersBusy.Add(1)
		d.commandLocked(protocol.Frame{Type: protocol.MsgOfferDecline, OfferID: f.OfferID, TripID: f.TripID})
		return
	}
	exp, _ := parseTime(f.ExpiresAt)
	d.setState(dThinking)
	d.tripID, d.offerID, d.offerExp = f.TripID, f.OfferID, exp
	d.pickup = d.r.city.Nearest(d.r.city.XY(f.Pickup))
	d.dropoff = d.r.city.Nearest(d.r.city.XY(f.Dropoff))
	span := d.r.cfg.ThinkMax - d.r.cfg.ThinkMin
	think := d.r.cfg.ThinkMin + time.Duration(d.rng.Float64()*float64(span))
	d.after(think, d.decide)
}

func (d *driver) decide() {
	now := time.Now()
	if !d.offerExp.IsZero() && now.After(d.offerExp) {
		d.r.m.offersLate.Add(1) // thought too long: the offer is gone
		d.cruise()
		return
	}
	if d.rng.Float64() < d.r.cfg.AcceptProb {
		d.r.m.offersAccepted.Add(1)
		d.commandLocked(protocol.Frame{Type: protocol.MsgOfferAccept, OfferID: d.offerID, TripID: d.tripID})
		d.wait(dAccepting)
		return
	}
	d.r.m.offersDeclined.Add(1)
	d.commandLocked(protocol.Frame{Type: protocol.MsgOfferDecline, OfferID: d.offerID, TripID: d.tripID})
	d.cruise()
}

// tripChanged follows a trip push for the trip in hand. Each step's command
// is sent only after the push confirming the previous step.
func (d *driver) tripChanged(state, driverID string, now time.Time) {
	mine := driverID == d.sub
	switch {
	case state == protocol.StateCancelled || state == protocol.StateNoDrivers:
		d.cruise()
	case state == protocol.StateRequested && (d.state == dThinking || d.state == dAccepting):
		d.cruise() // the offer ended (expired or taken back) before the accept
	case state == protocol.StateAccepted && mine && d.state == dAccepting:
		d.move(now)
		d.setState(dToPickup)
		d.mv.path = d.r.city.Route(d.mv.at(d.r.city), d.pickup)
	case state == protocol.StateArrived && mine && d.state == dArriving:
		d.setState(dBoarding)
		board := time.Duration((10 + 30*d.rng.Float64()) / d.r.cfg.Speedup * float64(time.Second))
		d.after(board, func() {
			d.commandLocked(protocol.Frame{Type: protocol.MsgTripStart, TripID: d.tripID})
			d.wait(dStarting)
		})
	case state == protocol.StateInProgress && mine && d.state == dStarting:
		d.move(now)
		d.setState(dToDropoff)
		d.mv.path = d.r.city.Route(d.mv.at(d.r.city), d.dropoff)
	case state == protocol.StateCompleted && mine && d.state == dCompleting:
		d.r.m.driverTrips.Add(1)
		d.cruise()
	}
}

// resync adopts the trip the server says this driver has after a gap that
// could not be filled.
func (d *driver) resync(t *protocol.TripMessage, now time.Time) {
	if t == nil || t.DriverID != d.sub || protocol.Terminal(t.State) {
		if d.state > dAccepting {
			d.cruise()
		}
		return
	}
	d.tripID = t.TripID
	d.pickup = d.r.city.Nearest(d.r.city.XY(t.Pickup))
	d.dropoff = d.r.city.Nearest(d.r.city.XY(t.Dropoff))
	d.move(now)
	switch t.State {
	case protocol.StateAccepted:
		d.setState(dToPickup)
		d.mv.path = d.r.city.Route(d.mv.at(d.r.city), d.pickup)
	case protocol.StateArrived:
		d.commandLocked(protocol.Frame{Type: protocol.MsgTripStart, TripID: d.tripID})
		d.wait(dStarting)
	case protocol.StateInProgress:
		d.setState(dToDropoff)
		d.mv.path = d.r.city.Route(d.mv.at(d.r.city), d.dropoff)
	}
}

func (d *driver) answered(cmd pending, f *protocol.ServerFrame, now time.Time) {
	switch cmd.kind {
	case protocol.MsgAvailability:
		if f.Type == protocol.MsgAck && !d.online {
			d.online = true
			d.r.m.driversOnline.Add(1)
		}
	case protocol.MsgOfferAccept, protocol.MsgTripArrive, protocol.MsgTripStart, protocol.MsgTripComplete:
		// An error here means the trip moved on without us (the offer
		// expired, the rider cancelled): give it up.
		if f.Type == protocol.MsgError && cmd.trip == d.tripID && d.state > dCruising {
			d.cruise()
		}
	}
}

func (d *driver) stop() {
	d.setState(dStopped)
	if d.pingT != nil {
		d.pingT.Stop()
	}
	if d.c != nil && d.online {
		off := false
		d.commandLocked(protocol.Frame{Type: protocol.MsgAvailability, Available: &off})
	}
}

func (d *driver) gaveUp(first bool) {
	d.setState(dStopped)
	if d.pingT != nil {
		d.pingT.Stop()
	}
	if first {
		d.r.m.driversFailed.Add(1)
	} else {
		d.r.m.phonesLost.Add(1)
	}
}
