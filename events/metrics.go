package events

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/segmentio/encoding/json"
)

var (
	consumedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hexride_events_consumed_total", Help: "Events handled and marked for commit, by group and topic.",
	}, []string{"group", "topic"})
	handlerRetries = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hexride_events_handler_retries_total", Help: "Transient handler failures that were retried.",
	}, []string{"group", "topic"})
	// eventDelay is how far behind its own time an event is when its
	// handler gets it: the hops of produce, fetch and queueing in between.
	eventDelay = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hexride_events_delay_seconds",
		Help:    "From an event's occurred_at to its handler receiving it, by group and topic.",
		Buckets: []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .02, .03, .05, .1, .2, .5, 1, 2, 5},
	}, []string{"group", "topic"})
	duplicatesDropped = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hexride_events_duplicates_dropped_total", Help: "Events dropped before their handler as seen already (Deduplicating), by group and topic.",
	}, []string{"group", "topic"})
	deadLettersTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hexride_events_dead_letters_total", Help: "Events sent to the dead-letter topic, by group and source topic.",
	}, []string{"group", "topic"})
)

// Marshal encodes the envelope as it travels on the log.
func (e Envelope) Marshal() ([]byte, error) { return encode(e) }

func encode(e Envelope) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode envelope %s: %w", e.ID, err)
	}
	return b, nil
}
