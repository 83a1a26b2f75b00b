// Package sim simulates hexride's phones: drivers and riders that speak only
// the public WebSocket contract (asyncapi.yaml), as the real apps would,
// against a running platform. It backs the load test (go run ./loadtest)
// and the demo city of the one-command run. Of the platform's packages it
// imports only the contract's, package protocol, as a client would.
//
// # The city
//
// A square street grid (Config.SizeKM, 10 km by default) centred on
// Config.Center (37.7749,-122.4194, San Francisco, by default), projected
// onto a local flat plane: two-way streets every 200 m (BlockM) in both
// directions, every fifth one (every 1 km) an arterial. Local streets have a
// limit of 9 m/s (32 km/h), arterials 15 m/s (54 km/h); each driver drives
// at 85–110% of the limits. Vehicles follow the fastest route (A* by travel
// time), so longer trips use the arterials. Config.Speedup compresses
// driving so that rides end within a short run: a car covers Speedup times
// the ground a real one would, while its pings keep reporting the real
// street speed and everything human (pings, think times, cancellations)
// keeps real time.
//
// # Drivers
//
// A driver connects (a development token from POST /v1/dev/token, then
// GET /v1/ws), sends availability true and its position, and then a
// location every 1–4 s (each driver its own interval, ±10% jitter), with
// heading, speed and time. When idle it cruises to random intersections. An
// offer is answered after a think time (Config.ThinkMin–ThinkMax): accepted
// with Config.AcceptProb, else declined, and not answered at all if it
// expired meanwhile. After offer.accept the driver waits for the trip push
// ACCEPTED, drives to the pickup, sends trip.arrive, waits for ARRIVED,
// waits for the rider to board, sends trip.start, waits for IN_PROGRESS,
// drives to the drop-off, sends trip.complete and waits for COMPLETED: every
// command only after the trip push confirming the previous step. A
// CANCELLED push, or an error answer to a step, returns it to cruising; so
// does a missing push after Config.StepTimeout (counted as stuck).
//
// # Riders
//
// Ride requests arrive as a Poisson process at Config.RequestsPerSec. Each
// is a new rider phone that connects, sends ride.request (with an id; the
// ack carries the trip id), and watches its trip's pushes until a terminal
// state (COMPLETED, CANCELLED, NO_DRIVERS), then hangs up. Half the pickups
// are drawn around the centre, half anywhere; drop-offs at least a fifth of
// the city away. With Config.CancelProb a rider cancels (trip.cancel) at a
// random moment within Config.CancelWithin, if the ride has not started.
//
// # The contract, as a phone uses it
//
// Every command but location carries an id and stays pending until its ack
// or error; one answered `unavailable` or `rate_limited` is resent with the
// same id. A phone whose socket drops reconnects with after_seq set to the
// last seq it saw, resends its pending commands with their ids, and adopts
// the trip in a resync. Compression is off.
//
// # Determinism and memory
//
// Every choice is drawn from a generator seeded by Config.Seed and the
// phone's number (the arrival process has its own), so two runs with one
// seed make the same city, drivers, requests and decisions, apart from what
// server timing changes (which driver gets which offer, and so on). User ids
// start with Config.IDPrefix, different per run by default.
//
// A phone holds its socket, a few hundred bytes of state and its route, and
// one goroutine (the socket reader); its timers are runtime timers that run
// briefly when they fire; encoding buffers and route-search memory are
// pooled. That keeps 10,000 phones within one process.
//
// # Measurements
//
// Run returns a Report: pings sent and accepted (not answered with an
// error) per second; requests and their outcomes; the match rate; HDR
// histograms (p50/p90/p99/max) of request→offer (ride.request sent → the
// rider's first trip push in state OFFERED), request→accepted, trip push
// latency (receive time minus the push's updated_at), ping→rider latency
// (receive time of a driver.location push minus its at, when the gateway
// took the ping) and offered pickup distance; errors by code and by
// command; and a timeline, a point per second with that second's
// throughput and latencies, which the HTML report plots.
package sim
