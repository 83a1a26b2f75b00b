package sim

import (
	"math/rand/v2"
	"time"

	"github.com/hexride/hexride/protocol"
)

// rider is one ride request: a rider's phone that connects, asks for a ride,
// watches the trip until it ends (cancelling it on the way if it was
// going to), and hangs up.
type rider struct {
	phone
	rng      *rand.Rand
	pickup   LatLng
	dropoff  LatLng
	cancelIn time.Duration // 0: never cancels

	sentAt  time.Time
	tripID  string
	state   string
	offered bool
	matched bool
	ended   bool
	actT    *time.Timer
	rec     RequestRecord // Config.Record
	logged  bool
}

func newRider(r *runner, i int) *rider {
	rd := &rider{rng: rand.New(rand.NewPCG(r.cfg.Seed, streamRider+uint64(i)))}
	rd.phone = phone{r: r, role: protocol.RoleRider, sub: r.cfg.IDPrefix + "-r" + itoa(i), b: rd, target: i % len(r.targets)}
	c := r.city
	// Half the demand is downtown, half anywhere; rides go anywhere at
	// least a fifth of the city away.
	var from int32
	if rd.rng.IntN(2) == 0 {
		from = c.CentralNode(rd.rng)
	} else {
		from = c.RandomNode(rd.rng)
	}
	to := c.RandomNode(rd.rng)
	for range 20 {
		if c.ManhattanM(from, to) >= c.SideM()/5 {
			break
		}
		to = c.RandomNode(rd.rng)
	}
	rd.pickup, rd.dropoff = c.LatLngOf(c.XYOf(from)), c.LatLngOf(c.XYOf(to))
	if rd.rng.Float64() < r.cfg.CancelProb {
		rd.cancelIn = time.Duration((0.05 + 0.95*rd.rng.Float64()) * float64(r.cfg.CancelWithin))
	}
	return rd
}

func (rd *rider) connected(first bool, now time.Time) {
	if !first {
		return // a pending request was resent with its id
	}
	rd.sentAt = now
	rd.rec.SentAt = now
	rd.commandLocked(protocol.Frame{Type: protocol.MsgRideRequest, Pickup: protocol.NewPoint(rd.pickup), Dropoff: protocol.NewPoint(rd.dropoff)})
	if rd.cancelIn > 0 {
		rd.actT = time.AfterFunc(rd.cancelIn, rd.maybeCancel)
	}
}

// maybeCancel cancels the trip if it has not started; a trip the rider has
// not heard of yet is tried again shortly.
func (rd *rider) maybeCancel() {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.done || rd.ended {
		return
	}
	switch rd.state {
	case "":
		rd.actT = time.AfterFunc(500*time.Millisecond, rd.maybeCancel)
	case protocol.StateRequested, protocol.StateOffered, protocol.StateAccepted, protocol.StateArrived:
		rd.r.m.cancelsSent.Add(1)
		rd.commandLocked(protocol.Frame{Type: protocol.MsgTripCancel, TripID: rd.tripID, Reason: "changed my mind"})
	}
}

func (rd *rider) learnTrip(id string) {
	if rd.tripID == "" && id != "" {
		rd.tripID = id
		rd.r.m.requestsAcked.Add(1)
	}
}

func (rd *rider) answered(cmd pending, f *protocol.ServerFrame, now time.Time) {
	if cmd.kind != protocol.MsgRideRequest {
		return // a cancel's answer: the trip push tells what happened
	}
	if f.Type == protocol.MsgAck {
		rd.learnTrip(f.TripID)
		rd.rec.Acked, rd.rec.AckedAt = true, now
		return
	}
	if rd.tripID == "" {
		rd.r.m.requestsFailed.Add(1)
		rd.rec.Error = f.Code
		rd.logRequest("failed")
		rd.finish()
	}
}

func (rd *rider) push(f *protocol.ServerFrame, now time.Time) {
	switch f.Type {
	case protocol.PushTrip:
		rd.tripChanged(&f.TripMessage, now)
	case protocol.PushResync:
		if f.Trip == nil {
			// The trip ended while we were away and the gap is gone: we
			// cannot tell how.
			rd.r.m.rideUnfinished("(ended unseen)")
			rd.logRequest("ended_unseen")
			rd.ended = true
			rd.finish()
			return
		}
		rd.tripChanged(f.Trip, now)
	}
}

func (rd *rider) tripChanged(t *protocol.TripMessage, now time.Time) {
	rd.learnTrip(t.TripID)
	if t.TripID != rd.tripID {
		return
	}
	rd.state = t.State
	switch t.State {
	case protocol.StateOffered:
		if !rd.offered {
			rd.offered = true
			rd.rec.OfferedAt = now
			rd.r.m.requestToOffer(now.Sub(rd.sentAt))
		}
	case protocol.StateAccepted, protocol.StateArrived, protocol.StateInProgress, protocol.StateCompleted:
		if !rd.matched {
			rd.matched = true
			rd.rec.MatchedAt = now
			rd.r.m.requestToAccepted(now.Sub(rd.sentAt))
		}
	}
	if protocol.Terminal(t.State) {
		rd.logRequest("ended")
		rd.r.m.outcome(t.State)
		rd.ended = true
		rd.finish()
	}
}

// finish ends the phone: run closes the socket once the frame is handled.
func (rd *rider) finish() {
	rd.done = true
	if rd.actT != nil {
		rd.actT.Stop()
	}
}

func (rd *rider) stop() {
	if rd.actT != nil {
		rd.actT.Stop()
	}
	if rd.tripID != "" && !rd.ended {
		rd.r.m.rideUnfinished(rd.state)
		rd.logRequest("unfinished")
	} else if rd.tripID == "" && rd.sentAt != (time.Time{}) {
		rd.r.m.requestsUnanswered.Add(1)
		rd.logRequest("unanswered")
	}
}

// logRequest records the request once, with how the phone's part ended.
func (rd *rider) logRequest(outcome string) {
	if !rd.r.cfg.Record || rd.logged {
		return
	}
	rd.logged = true
	rd.rec.Rider, rd.rec.TripID, rd.rec.FinalState, rd.rec.Outcome = rd.sub, rd.tripID, rd.state, outcome
	rd.r.m.recordRequest(rd.rec)
}

func (rd *rider) gaveUp(first bool) {
	rd.stop()
	if first {
		rd.r.m.ridersFailed.Add(1)
	} else {
		rd.r.m.phonesLost.Add(1)
	}
}
