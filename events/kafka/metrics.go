package kafka

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	producedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "hexride_events_produced_total", Help: "Events acknowledged by Kafka, by topic.",
	}, []string{"topic"})
	sendsLost = promauto.NewCounter(prometheus.CounterOpts{
		Name: "hexride_events_sends_lost_total", Help: "Driver events sent without an ack (fire and forget) that Kafka did not take.",
	})
)
