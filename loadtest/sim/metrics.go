package sim

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/hexride/hexride/protocol"
)

// metrics is what every phone records into; counters are atomic, the
// histograms and maps share one lock.
type metrics struct {
	driversOnline, driversFailed, driverTrips, stuck atomic.Int64
	pingsSent, pingErrors                            atomic.Int64

	requestsSent, requestsAcked, requestsFailed, requestsUnanswered atomic.Int64
	matched, completed, cancelled, noDrivers, unfinished            atomic.Int64
	ridersFailed, ridersActive, cancelsSent                         atomic.Int64

	offers, offersAccepted, offersDeclined, offersLate, offersBusy atomic.Int64

	disconnects, reconnects, phonesLost atomic.Int64

	mu            sync.Mutex
	reqToOffer    *hdrhistogram.Histogram // µs
	reqToAccepted *hdrhistogram.Histogram // µs
	push          *hdrhistogram.Histogram // µs, trip pushes
	location      *hdrhistogram.Histogram // µs, driver.location pushes
	pickup        *hdrhistogram.Histogram // m
	errs          map[string]int64        // server error code → count
	errsByCmd     map[string]int64        // "command code" → count
	client        map[string]int64        // client-side failure kind → count
	first         map[string]string       // first message per error kind
	unfinishedBy  map[string]int64        // trip state → rides still active at the end
	tl            *timeline               // per-second figures for the HTML report

	log recordLog // Config.Record only
}

const maxLatencyMicros = int64(time.Hour / time.Microsecond)

func newMetrics() *metrics {
	return &metrics{
		reqToOffer:    hdrhistogram.New(1, maxLatencyMicros, 3),
		reqToAccepted: hdrhistogram.New(1, maxLatencyMicros, 3),
		push:          hdrhistogram.New(1, maxLatencyMicros, 3),
		location:      hdrhistogram.New(1, maxLatencyMicros, 3),
		pickup:        hdrhistogram.New(1, 1_000_000, 3),
		errs:          map[string]int64{},
		errsByCmd:     map[string]int64{},
		client:        map[string]int64{},
		first:         map[string]string{},
		unfinishedBy:  map[string]int64{},
		tl:            newTimeline(),
	}
}

func micros(d time.Duration) int64 {
	return min(max(d.Microseconds(), 1), maxLatencyMicros)
}

func (m *metrics) requestToOffer(d time.Duration) {
	m.mu.Lock()
	_ = m.reqToOffer.RecordValue(micros(d))
	_ = m.tl.offer.RecordValue(micros(d))
	m.mu.Unlock()
}

func (m *metrics) requestToAccepted(d time.Duration) {
	m.matched.Add(1)
	m.mu.Lock()
	_ = m.reqToAccepted.RecordValue(micros(d))
	m.mu.Unlock()
}

// pushLatency records now minus a trip push's updated_at (same machine, so
// the clocks agree).
func (m *metrics) pushLatency(serverTime string, now time.Time) {
	m.since(serverTime, now, m.push, m.tl.push)
}

// locationLatency records now minus a driver.location push's at: when the
// gateway took the ping, so this is ping → rider, two hops.
func (m *metrics) locationLatency(serverTime string, now time.Time) {
	m.since(serverTime, now, m.location)
}

func (m *metrics) since(serverTime string, now time.Time, hs ...*hdrhistogram.Histogram) {
	t, ok := parseTime(serverTime)
	if !ok {
		return
	}
	m.mu.Lock()
	for _, h := range hs {
		_ = h.RecordValue(micros(now.Sub(t)))
	}
	m.mu.Unlock()
}

func (m *metrics) offerReceived(distM float64) {
	m.offers.Add(1)
	m.mu.Lock()
	_ = m.pickup.RecordValue(min(max(int64(distM+0.5), 1), 1_000_000))
	m.mu.Unlock()
}

func (m *metrics) commandSent(kind string) {
	if kind == protocol.MsgRideRequest {
		m.requestsSent.Add(1)
	}
}

func (m *metrics) outcome(state string) {
	switch state {
	case protocol.StateCompleted:
		m.completed.Add(1)
	case protocol.StateCancelled:
		m.cancelled.Add(1)
	case protocol.StateNoDrivers:
		m.noDrivers.Add(1)
	}
}

func (m *metrics) serverError(kind, code, msg string) {
	if code == "" {
		code = "(none)"
	}
	m.mu.Lock()
	m.errs[code]++
	m.errsByCmd[kind+" "+code]++
	if _, ok := m.first[code]; !ok {
		m.first[code] = kind + ": " + msg
	}
	m.mu.Unlock()
}

func (m *metrics) clientFailure(kind string, err error) {
	m.mu.Lock()
	m.client[kind]++
	if _, ok := m.first[kind]; !ok {
		m.first[kind] = err.Error()
	}
	m.mu.Unlock()
}

// live is the running figures for the progress line.
type live struct {
	online, requests, matched, ended, active int64
	pings                                    int64
	offerP50                                 time.Duration
	errors                                   int64
}

func (m *metrics) live() live {
	l := live{online: m.driversOnline.Load(), requests: m.requestsAcked.Load(), matched: m.matched.Load(),
		ended: m.completed.Load() + m.cancelled.Load() + m.noDrivers.Load(), active: m.ridersActive.Load(),
		pings: m.pingsSent.Load()}
	m.mu.Lock()
	l.offerP50 = time.Duration(m.reqToOffer.ValueAtQuantile(50)) * time.Microsecond
	for _, n := range m.errs {
		l.errors += n
	}
	m.mu.Unlock()
	return l
}

// rideUnfinished counts a ride still active when the run stopped, by the
// last state its rider saw.
func (m *metrics) rideUnfinished(state string) {
	m.unfinished.Add(1)
	if state == "" {
		state = "(unknown)"
	}
	m.mu.Lock()
	m.unfinishedBy[state]++
	m.mu.Unlock()
}
