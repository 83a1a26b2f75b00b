package platform

import (
	"context"
	"log/slog"

	"github.com/hexride/hexride/dispatch"
	"github.com/hexride/hexride/events"
	"github.com/hexride/hexride/events/kafka"
	"github.com/hexride/hexride/gateway"
	"github.com/hexride/hexride/livemap"
	"github.com/hexride/hexride/trip"
)

// Parts are the handlers of one process; a service that does not run here
// is nil and has no routes.
type Parts struct {
	Trips      *trip.Service
	Dispatcher *dispatch.Dispatcher
	Gateway    *gateway.Server
	LiveMap    *livemap.Hub
	// Availability is the drivers' availability record the map starts from.
	Availability livemap.Availability
	// Bulk publishes many events on which nobody waits in a hurry.
	Bulk events.Publisher
}

// Routes is the platform's topology: every way an event reaches a handler,
// in one table. The one-command run, the separate services and the fault
// run all use it. Services never call each other; this is how they talk.
func Routes(p Parts) []events.Route {
	var rs []events.Route
	if s := p.Trips; s != nil {
		rs = append(rs,
			// Every change to a trip, in order per trip, applied by one
			// writer; the outputs are the trip.updated event and the pushes.
			// A command seen again is handled again (tripstate returns its
			// outputs again, with the same ids): what a crash between
			// publishing and committing needs.
			events.Route{Group: trip.GroupCommands, Topic: events.TopicTripCommands, Handler: events.One(s.HandleCommand)},
			// Drivers' pings relayed to the riders of their trips.
			events.Route{Group: trip.GroupLocations, Topic: events.TopicDriverEvents, Handler: s.HandleDriverEvents,
				Batch: true, Bulk: true, Publisher: p.Bulk},
		)
	}
	if d := p.Dispatcher; d != nil {
		rs = append(rs,
			// The supply index, rebuilt on every start from the availability
			// record and the last StaleAfter of pings, in no group.
			events.Route{Reader: "dispatcher-supply", Topic: events.TopicDriverEvents, Handler: d.HandleDriverEvents,
				Batch: true, Bulk: true, Prepare: d.PrepareSupply, From: d.SupplyFrom, CaughtUp: d.SupplyCaughtUp},
			// Searches, shared among replicas by trip partition; each
			// owner rebuilds its partitions' searches from the log.
			events.Route{Group: dispatch.GroupTrips, Topic: events.TopicTripEvents, Handler: events.One(d.HandleTripEvent),
				Owned: &events.Ownership{Assigned: d.Assigned, CaughtUp: d.CaughtUp, Floor: d.Floor}},
		)
	}
	if g := p.Gateway; g != nil {
		// Pushes numbered per user and delivered to the user's sockets. A
		// push seen again (tripstate re-sends a transition's outputs after
		// a redelivery) is dropped before its Redis round trip; numbering
		// drops what this memory does not hold.
		rs = append(rs, events.Route{Group: gateway.Group, Topic: events.TopicUserPushes, Handler: g.HandlePushes, Batch: true,
			Dedup: 10_000})
	}
	if h := p.LiveMap; h != nil {
		rs = append(rs,
			// The live map, rebuilt on every start, in no group.
			events.Route{Reader: livemap.Reader + "-drivers", Topic: events.TopicDriverEvents,
				Handler: h.Handler(events.TopicDriverEvents), Batch: true, Bulk: true,
				Prepare: h.Prepare(p.Availability), From: h.DriversFrom},
			events.Route{Reader: livemap.Reader + "-trips", Topic: events.TopicTripEvents,
				Handler: h.Handler(events.TopicTripEvents), Batch: true},
		)
	}
	return rs
}

// Serve runs the routes of parts on the Kafka log at brokers, publishing
// with pub (and parts.Bulk, or else pub's Bulk if it has one), until ctx
// ends.
func Serve(ctx context.Context, brokers []string, pub events.Publisher, log *slog.Logger, parts Parts) error {
	if b, ok := pub.(interface{ Bulk() events.Publisher }); ok && parts.Bulk == nil {
		parts.Bulk = b.Bulk()
	}
	if parts.Bulk == nil {
		parts.Bulk = pub
	}
	r := events.NewRouter(kafka.Subscriber{Brokers: brokers, Logger: log}, pub, log)
	r.Add(Routes(parts)...)
	return r.Run(ctx)
}
