package fault

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/hexride/hexride/ride"
)

// Counts is what the checker found. Every field but DeadLetters and the
// Info ones is a safety count: 0 on a correct platform, faults or not.
type Counts struct {
	// AckedWithoutTrip: a rider was told its trip id, and the trip is
	// neither stored nor announced: a lost request.
	AckedWithoutTrip int `json:"acked_without_trip"`
	// AcceptedNeverEnded: trips stored in ACCEPTED, ARRIVED or
	// IN_PROGRESS after the drain: a driver held forever.
	AcceptedNeverEnded int `json:"accepted_never_ended"`
	// DriverInTwoTrips: drivers whose active trips (ACCEPTED until an end)
	// overlap in time.
	DriverInTwoTrips int `json:"driver_in_two_trips"`
	// TripWithTwoDrivers: trips announced with one driver and then
	// another.
	TripWithTwoDrivers int `json:"trip_with_two_drivers"`
	// IllegalTransitions: consecutive versions of a trip whose states the
	// state machine does not connect, or a first version not REQUESTED.
	IllegalTransitions int `json:"illegal_transitions"`
	// VersionGaps: versions missing between 1 and a trip's last, or a
	// stored version the log never announced.
	VersionGaps int `json:"version_gaps"`
	// VersionRepeats: one version of a trip announced with different
	// contents (a re-announcement of the same transition is fine).
	VersionRepeats int `json:"version_repeats"`
	// PushesTwice: a phone got the same trip version twice under
	// different seqs.
	PushesTwice int `json:"pushes_delivered_twice"`
	// PushesNeverStored: a trip push (produced or delivered) of a state
	// and version no announced transition has.
	PushesNeverStored int `json:"pushes_never_stored"`
	// NotTerminal: requests whose rider learnt a trip id and whose stored
	// trip is not terminal after the drain.
	NotTerminal int `json:"requests_not_terminal"`
	// Unanswered: requests that got neither an ack nor an error by the end.
	Unanswered int `json:"requests_unanswered"`
	// TripsNotTerminal: every stored trip not terminal, acked or not.
	TripsNotTerminal int `json:"trips_not_terminal"`
	// LeftoverClaims: driver claims, rider pointers and searching entries
	// of trips that have ended (or do not exist).
	LeftoverClaims int `json:"leftover_claims"`
	// LeftoverReservations: reservations without expiry of ended trips.
	LeftoverReservations int `json:"leftover_reservations"`

	// DeadLetters by reason (ids and numbers blanked). Not a safety count:
	// a command that lost a race is dead-lettered by design; what a wrong
	// one costs shows up in the counts above.
	DeadLetters map[string]int `json:"dead_letters"`
	// InfoExpiringReservations: reservations of ended trips that will
	// still expire by themselves (offer holds).
	InfoExpiringReservations int `json:"info_expiring_reservations"`
	// InfoUndecodable: records on any topic with no readable envelope.
	InfoUndecodable int `json:"info_undecodable"`
	// InfoTrips and InfoRequests size the history.
	InfoTrips    int `json:"info_trips"`
	InfoRequests int `json:"info_requests"`
	// Examples name a few offenders per count, for diagnosis.
	Examples map[string][]string `json:"examples,omitempty"`
}

// Safety lists every safety count by name, in a fixed order.
func (c Counts) Safety() [][2]any {
	return [][2]any{
		{"acked requests with no trip", c.AckedWithoutTrip},
		{"trips accepted, never ended", c.AcceptedNeverEnded},
		{"drivers in two active trips", c.DriverInTwoTrips},
		{"trips with two drivers", c.TripWithTwoDrivers},
		{"illegal transitions", c.IllegalTransitions},
		{"version gaps", c.VersionGaps},
		{"version repeats", c.VersionRepeats},
		{"pushes delivered twice", c.PushesTwice},
		{"pushes of states never stored", c.PushesNeverStored},
		{"requests not terminal", c.NotTerminal},
		{"requests unanswered", c.Unanswered},
		{"trips not terminal", c.TripsNotTerminal},
		{"leftover claims", c.LeftoverClaims},
		{"leftover reservations", c.LeftoverReservations},
	}
}

// SafetyTotal is the sum of the safety counts.
func (c Counts) SafetyTotal() int {
	n := 0
	for _, kv := range c.Safety() {
		n += kv[1].(int)
	}
	return n
}

// legal is the trip state machine as the public contract describes it
// (REQUESTED → OFFERED → ACCEPTED → ARRIVED → IN_PROGRESS → COMPLETED;
// declines and expiries back to REQUESTED; cancel before pickup;
// NO_DRIVERS while searching). It is written out here, not imported from
// trip/, so that a wrong table there is caught, not copied.
var legal = map[[2]string]bool{
	{ride.StateRequested, ride.StateOffered}: true, {ride.StateRequested, ride.StateCancelled}: true,
	{ride.StateRequested, ride.StateNoDrivers}: true,
	{ride.StateOffered, ride.StateAccepted}:    true, {ride.StateOffered, ride.StateRequested}: true,
	{ride.StateOffered, ride.StateCancelled}: true, {ride.StateOffered, ride.StateNoDrivers}: true,
	{ride.StateAccepted, ride.StateArrived}: true, {ride.StateAccepted, ride.StateCancelled}: true,
	{ride.StateArrived, ride.StateInProgress}: true, {ride.StateArrived, ride.StateCancelled}: true,
	{ride.StateInProgress, ride.StateCompleted}: true,
}

// created says a trip may begin so: REQUESTED, or, for a request acked while
// its rider already had an active trip, CANCELLED with reason rider_busy
// (docs/trip-states.md).
func created(t ride.Trip) bool {
	return t.State == ride.StateRequested || t.State == ride.StateCancelled && t.Reason == "rider_busy"
}

func active(state string) bool {
	return state == ride.StateAccepted || state == ride.StateArrived || state == ride.StateInProgress
}

const maxExamples = 5

type checker struct {
	c Counts
}

func (k *checker) example(count, what string, args ...any) {
	if k.c.Examples == nil {
		k.c.Examples = map[string][]string{}
	}
	if len(k.c.Examples[count]) < maxExamples {
		k.c.Examples[count] = append(k.c.Examples[count], fmt.Sprintf(what, args...))
	}
}

type tripKey struct {
	id string
	v  int64
}

// Check counts every violation in h. It reads nothing but h.
func Check(h History) Counts {
	k := &checker{c: Counts{DeadLetters: map[string]int{}, InfoUndecodable: h.Undecodable, InfoRequests: len(h.Requests)}}

	// Each trip's announced versions; a re-announcement of one transition
	// (tripstate re-publishes after a crash) has the same contents.
	versions := map[string]map[int64]ride.Trip{}
	announced := map[tripKey]string{}
	for _, e := range h.TripEvents {
		t := e.Trip
		vs := versions[t.TripID]
		if vs == nil {
			vs = map[int64]ride.Trip{}
			versions[t.TripID] = vs
		}
		if prev, ok := vs[t.Version]; ok {
			if prev.State != t.State || prev.DriverID != t.DriverID {
				k.c.VersionRepeats++
				k.example("version_repeats", "trip %s v%d: %s/%s then %s/%s", t.TripID, t.Version,
					prev.State, prev.DriverID, t.State, t.DriverID)
			}
			continue
		}
		vs[t.Version] = t
		announced[tripKey{t.TripID, t.Version}] = t.State
	}
	k.c.InfoTrips = len(versions)

	type span struct {
		trip       string
		start, end time.Time
	}
	spans := map[string][]span{}
	for id, vs := range versions {
		order := slices.Sorted(maps.Keys(vs))
		last := order[len(order)-1]
		for v := int64(1); v <= last; v++ {
			if _, ok := vs[v]; !ok {
				k.c.VersionGaps++
				k.example("version_gaps", "trip %s: v%d of v%d never announced", id, v, last)
			}
		}
		if first := vs[order[0]]; order[0] != 1 || !created(first) {
			k.c.IllegalTransitions++
			k.example("illegal_transitions", "trip %s starts at v%d in %s", id, order[0], first.State)
		}
		driver := ""
		var sp *span
		for i, v := range order {
			t := vs[v]
			if i > 0 && order[i-1] == v-1 && !legal[[2]string{vs[v-1].State, t.State}] {
				k.c.IllegalTransitions++
				k.example("illegal_transitions", "trip %s v%d→v%d: %s → %s", id, v-1, v, vs[v-1].State, t.State)
			}
			if t.DriverID != "" {
				if driver != "" && driver != t.DriverID {
					k.c.TripWithTwoDrivers++
					k.example("trip_with_two_drivers", "trip %s: %s then %s at v%d", id, driver, t.DriverID, v)
				}
				driver = t.DriverID
			}
			if active(t.State) && sp == nil && t.DriverID != "" {
				sp = &span{trip: id, start: t.UpdatedAt}
			}
			if ride.Terminal(t.State) && sp != nil && sp.end.IsZero() {
				sp.end = t.UpdatedAt
			}
		}
		if sp != nil {
			spans[driver] = append(spans[driver], *sp)
		}
	}
	forever := time.Unix(1<<40, 0)
	for d, ss := range spans {
		sort.Slice(ss, func(i, j int) bool { return ss[i].start.Before(ss[j].start) })
		for i := 1; i < len(ss); i++ {
			end := ss[i-1].end
			if end.IsZero() {
				end = forever
			}
			if ss[i].start.Before(end) {
				k.c.DriverInTwoTrips++
				k.example("driver_in_two_trips", "driver %s: trip %s from %s while on %s", d, ss[i].trip,
					ss[i].start.Format(time.StampMilli), ss[i-1].trip)
				break
			}
		}
	}

	// The store against the log.
	ended := func(id string) bool {
		st, ok := h.Store.Trips[id]
		return !ok || ride.Terminal(st.Trip.State)
	}
	for id, st := range h.Store.Trips {
		vs := versions[id]
		if _, ok := vs[st.V]; !ok {
			k.c.VersionGaps++
			k.example("version_gaps", "trip %s stored at v%d, never announced", id, st.V)
		}
		if !ride.Terminal(st.Trip.State) {
			k.c.TripsNotTerminal++
			k.example("trips_not_terminal", "trip %s stored in %s", id, st.Trip.State)
		}
		if active(st.Trip.State) {
			k.c.AcceptedNeverEnded++
			k.example("accepted_never_ended", "trip %s stored in %s with driver %s", id, st.Trip.State, st.Trip.DriverID)
		}
	}
	for d, id := range h.Store.Claims {
		if ended(id) {
			k.c.LeftoverClaims++
			k.example("leftover_claims", "driver %s claimed by ended trip %s", d, id)
		}
	}
	for r, id := range h.Store.RiderTrips {
		if ended(id) {
			k.c.LeftoverClaims++
			k.example("leftover_claims", "rider %s pointed at ended trip %s", r, id)
		}
	}
	for _, id := range h.Store.Searching {
		if ended(id) {
			k.c.LeftoverClaims++
			k.example("leftover_claims", "ended trip %s still searching", id)
		}
	}
	for d, r := range h.Store.Reservations {
		if !ended(r.TripID) {
			continue
		}
		if r.TTL < 0 {
			k.c.LeftoverReservations++
			k.example("leftover_reservations", "driver %s held for ended trip %s", d, r.TripID)
		} else {
			k.c.InfoExpiringReservations++
		}
	}

	// Requests as the riders saw them.
	for _, r := range h.Requests {
		switch {
		case r.TripID == "" && r.Outcome == "unanswered":
			k.c.Unanswered++
			k.example("requests_unanswered", "rider %s: no answer (sent %s)", r.Rider, r.SentAt.Format(time.StampMilli))
		case r.TripID == "":
		default:
			st, stored := h.Store.Trips[r.TripID]
			if _, logged := versions[r.TripID]; !stored && !logged {
				k.c.AckedWithoutTrip++
				k.example("acked_without_trip", "rider %s: trip %s", r.Rider, r.TripID)
				continue
			}
			if stored && !ride.Terminal(st.Trip.State) {
				k.c.NotTerminal++
				k.example("requests_not_terminal", "rider %s: trip %s in %s (rider saw %q)", r.Rider, r.TripID,
					st.Trip.State, r.FinalState)
			}
		}
	}

	// Pushes: produced and delivered ones must be of stored transitions,
	// and a phone gets each at most once.
	for _, p := range h.LogPushes {
		if s, ok := announced[tripKey{p.TripID, p.Version}]; !ok || s != p.State {
			k.c.PushesNeverStored++
			k.example("pushes_never_stored", "produced for %s: trip %s v%d %s", p.User, p.TripID, p.Version, p.State)
		}
	}
	type seen struct {
		user string
		tripKey
	}
	delivered := map[seen]int64{}
	for _, p := range h.Pushes {
		if s, ok := announced[tripKey{p.TripID, p.Version}]; !ok || s != p.State {
			k.c.PushesNeverStored++
			k.example("pushes_never_stored", "delivered to %s: trip %s v%d %s", p.User, p.TripID, p.Version, p.State)
		}
		if p.Resync {
			continue
		}
		key := seen{p.User, tripKey{p.TripID, p.Version}}
		if seq, dup := delivered[key]; dup {
			k.c.PushesTwice++
			k.example("pushes_delivered_twice", "%s got trip %s v%d as seq %d and %d", p.User, p.TripID, p.Version, seq, p.Seq)
			continue
		}
		delivered[key] = p.Seq
	}

	for _, d := range h.DeadLetters {
		k.c.DeadLetters[reasonClass(d.Group, d.Reason)]++
	}
	return k.c
}

var idLike = regexp.MustCompile(`[0-9a-f]{12,}|lt[0-9a-z]+-[rd][0-9]+|\b[0-9]+\b`)

// reasonClass blanks the ids and numbers in a dead letter's reason, so that
// reasons group.
func reasonClass(group, reason string) string {
	r := idLike.ReplaceAllString(reason, "#")
	if len(r) > 100 {
		r = r[:100] + "…"
	}
	return group + ": " + r
}
