package sim

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Config of a simulation run. Start from DefaultConfig (or DemoCity) and
// change what you need: probabilities are taken as given (0 means never),
// while zero durations, sizes and speeds take their defaults.
type Config struct {
	// Target is the platform's base URL, loopback only (see CheckTarget),
	// for example http://127.0.0.1:8080. The phones connect to
	// ws://host:port/v1/ws and get development tokens from
	// POST /v1/dev/token.
	Target string
	// Targets, when set, replaces Target with several base URLs of one
	// platform (its gateway replicas): phone i starts at Targets[i%n] and
	// moves to the next one whenever it cannot connect, as an app behind a
	// load balancer would.
	Targets []string
	// GiveUpAfter is how many failed connection attempts in a row make a
	// phone give up (default 5). Fault runs raise it: a phone that gives up
	// during an outage is the harness's loss, not the platform's.
	GiveUpAfter int
	// Record fills Report.RequestLog and Report.PushLog: what each request
	// and each phone saw, for a checker that compares it with the event log.
	Record bool
	// Drivers is how many driver phones to run.
	Drivers int
	// RequestsPerSec is the mean rate of ride requests (a Poisson process);
	// each request is a new rider phone. 0 runs drivers only.
	RequestsPerSec float64
	// Duration is how long riders keep requesting, after RampUp. 0 runs until
	// ctx ends (the endless demo city).
	Duration time.Duration
	// RampUp spreads the drivers' connections over this long; requests start
	// once it is over.
	RampUp time.Duration
	// Drain is how long, after the request window, riders get to reach a
	// terminal state before the run stops (default 90s: at the default
	// speedup the longest rides across the city take about a minute).
	// Riders still active then are reported as unfinished.
	Drain time.Duration
	// MaxRequests caps the number of requests (0: no cap beyond the rate ×
	// Duration).
	MaxRequests int
	// Seed makes the run reproducible apart from server timing: the city,
	// every phone's choices and the request arrivals derive from it.
	Seed uint64

	// AcceptProb is the chance a driver accepts an offer (else declines).
	AcceptProb float64
	// CancelProb is the chance a rider cancels, at a random moment up to
	// CancelWithin after requesting, if the ride has not started by then.
	CancelProb   float64
	CancelWithin time.Duration
	// ThinkMin and ThinkMax bound a driver's think time before answering an
	// offer (defaults 0.5s and 3s).
	ThinkMin, ThinkMax time.Duration
	// PingMin and PingMax bound each driver's location interval (defaults
	// 1s and 4s); each driver keeps its own interval, ±10% jitter.
	PingMin, PingMax time.Duration

	// Center and SizeKM place the square street grid (defaults
	// 37.7749,-122.4194 and 10 km).
	Center LatLng
	SizeKM float64
	// Speedup compresses driving (and boarding): vehicles cover Speedup
	// times the ground a real car would at the speed limit, so that rides
	// finish within a short run. Pings, think times and cancellations stay in
	// real time, and pings report the real street speed. Default 20; 1 is
	// real time.
	Speedup float64

	// IDPrefix starts every simulated user id (default: "lt" and the start
	// time in base 36), so that runs against one platform never share users
	// or command ids.
	IDPrefix string
	// Connecting bounds concurrent token fetches and dials (default 64).
	Connecting int
	// StepTimeout is how long a driver waits for the trip push that
	// confirms a step before it gives the trip up and counts it as stuck
	// (default 60s).
	StepTimeout time.Duration
}

// Defaults of DefaultConfig.
var (
	DefaultCenter = LatLng{Lat: 37.7749, Lng: -122.4194}
)

// DefaultConfig is a short load test against the one-command platform on
// its default address: 200 drivers, 5 requests/s for 60s.
func DefaultConfig() Config {
	return Config{
		Target:         "http://127.0.0.1:8080",
		Drivers:        200,
		RequestsPerSec: 5,
		Duration:       60 * time.Second,
		RampUp:         5 * time.Second,
		Drain:          90 * time.Second,
		Seed:           1,
		AcceptProb:     0.9,
		CancelProb:     0.05,
		CancelWithin:   20 * time.Second,
		ThinkMin:       500 * time.Millisecond,
		ThinkMax:       3 * time.Second,
		PingMin:        time.Second,
		PingMax:        4 * time.Second,
		Center:         DefaultCenter,
		SizeKM:         10,
		Speedup:        20,
		Connecting:     64,
		StepTimeout:    60 * time.Second,
	}
}

// DemoCity is a gentle endless city for the one-command demo: a few hundred
// drivers cruising at a few times real speed and a ride request every 1.7 s
// on average, so the live map is busy from the first second, until ctx ends.
// target is the platform's base URL.
func DemoCity(target string) Config {
	c := DefaultConfig()
	c.Target = target
	c.Drivers = 300
	c.RequestsPerSec = 0.6
	c.Duration = 0
	c.RampUp = 5 * time.Second
	c.Speedup = 3
	c.CancelProb = 0.05
	c.IDPrefix = "demo-" + strconv.FormatInt(time.Now().Unix(), 36)
	return c
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Drain <= 0 {
		c.Drain = d.Drain
	}
	if c.CancelWithin <= 0 {
		c.CancelWithin = d.CancelWithin
	}
	if c.ThinkMin <= 0 && c.ThinkMax <= 0 {
		c.ThinkMin, c.ThinkMax = d.ThinkMin, d.ThinkMax
	}
	if c.PingMin <= 0 && c.PingMax <= 0 {
		c.PingMin, c.PingMax = d.PingMin, d.PingMax
	}
	c.ThinkMax = max(c.ThinkMax, c.ThinkMin)
	c.PingMax = max(c.PingMax, c.PingMin)
	if c.Center == (LatLng{}) {
		c.Center = d.Center
	}
	if c.SizeKM <= 0 {
		c.SizeKM = d.SizeKM
	}
	if c.Speedup <= 0 {
		c.Speedup = d.Speedup
	}
	if c.IDPrefix == "" {
		c.IDPrefix = "lt" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	}
	if c.Connecting <= 0 {
		c.Connecting = d.Connecting
	}
	if c.StepTimeout <= 0 {
		c.StepTimeout = d.StepTimeout
	}
	if c.GiveUpAfter <= 0 {
		c.GiveUpAfter = 5
	}
	if len(c.Targets) > 0 {
		c.Target = c.Targets[0]
	}
	return c
}

// Validate reports the first bad setting (after defaults are applied).
func (c Config) Validate() error {
	switch {
	case c.Drivers < 0 || c.Drivers > 100_000:
		return fmt.Errorf("drivers %d: want 0 to 100000", c.Drivers)
	case c.RequestsPerSec < 0 || c.RequestsPerSec > 10_000:
		return fmt.Errorf("request rate %g/s: want 0 to 10000", c.RequestsPerSec)
	case c.Duration < 0 || c.RampUp < 0:
		return errors.New("duration and ramp-up must not be negative")
	case c.MaxRequests < 0:
		return errors.New("max requests must not be negative")
	case c.AcceptProb < 0 || c.AcceptProb > 1 || c.CancelProb < 0 || c.CancelProb > 1:
		return errors.New("accept and cancel probabilities must be in [0, 1]")
	case c.PingMin < 100*time.Millisecond:
		return fmt.Errorf("ping interval %s: want at least 100ms", c.PingMin)
	case c.SizeKM < 1 || c.SizeKM > 100:
		return fmt.Errorf("city size %g km: want 1 to 100", c.SizeKM)
	case c.Speedup > 1000:
		return fmt.Errorf("speedup %g: want at most 1000", c.Speedup)
	case len(c.IDPrefix) > 40:
		return errors.New("id prefix longer than 40 bytes")
	case c.Center.Lat < -80 || c.Center.Lat > 80 || c.Center.Lng < -180 || c.Center.Lng > 180:
		return fmt.Errorf("centre %v: want a latitude within ±80 and a longitude within ±180", c.Center)
	}
	for _, t := range c.Targets {
		if _, err := CheckTarget(t); err != nil {
			return err
		}
	}
	_, err := CheckTarget(c.Target)
	return err
}
