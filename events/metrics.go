package events

import (
	"encoding/json"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	producedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hexride_events_produced_total", Help: "Events acknowledged by Kafka, by topic.",
	}, []string{"topic"})
	consumedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hexride_events_consumed_total", Help: "Events handled and marked for commit, by group and topic.",
	}, []string{"group", "topic"})
	handlerRetries = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hexride_events_handler_retries_total", Help: "Transient handler failures that were retried.",
	}, []string{"group", "topic"})
	deadLettersTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hexride_events_dead_letters_total", Help: "Events sent to the dead-letter topic, by group and source topic.",
	}, []string{"group", "topic"})
)

func encode(e Envelope) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode envelope %s: %w", e.ID, err)
	}
	return b, nil
}
