// Command ride runs one ride end to end against a hexride platform with the
// Go client (package client): it gets a rider's and a driver's token from
// the development token endpoint, puts the driver on duty, has the rider
// request a ride, and drives it to COMPLETED, printing each step. It exits 0
// when the ride completed and both phones saw every state.
//
//	go run ./cmd/hexride &
//	go run ./examples/ride -url http://127.0.0.1:8080
//
// The ride happens in Oakland by default, out of reach of the one-command
// run's simulated city (San Francisco), so no simulated driver takes the
// offer.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hexride/hexride/client"
	"github.com/hexride/hexride/protocol"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ride:", err)
		}
		os.Exit(1)
	}
}

// run parses args and runs one ride; it is main without the exit, for the
// test.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ride", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:8080", "the gateway's address (http:// or ws://)")
	tokenURL := fs.String("token-url", "", "development token endpoint (POST {\"role\":...,\"sub\":...}); empty: -url's /v1/dev/token")
	lat := fs.Float64("lat", 37.8044, "the driver's latitude; the pickup is about 200 m away")
	lng := fs.Float64("lng", -122.2712, "the driver's longitude")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	httpBase := strings.Replace(strings.Replace(strings.TrimRight(*base, "/"), "ws://", "http://", 1), "wss://", "https://", 1)
	httpBase = strings.TrimSuffix(httpBase, "/v1/ws")
	if *tokenURL == "" {
		*tokenURL = httpBase + "/v1/dev/token"
	}
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }

	// One pair of users per run: a rider left with a live trip by an
	// earlier run would be refused another (rider_busy).
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	rider, err := connect(ctx, httpBase, *tokenURL, protocol.RoleRider, "ride-example-r-"+suffix)
	if err != nil {
		return err
	}
	defer rider.Close()
	driver, err := connect(ctx, httpBase, *tokenURL, protocol.RoleDriver, "ride-example-d-"+suffix)
	if err != nil {
		return err
	}
	defer driver.Close()
	say("connected: rider ride-example-r-%s, driver ride-example-d-%s", suffix, suffix)

	riderTrips, driverTrips := follow("rider", rider), follow("driver", driver)

	if _, err := driver.SetAvailable(ctx, true); err != nil {
		return fmt.Errorf("driver availability: %w", err)
	}
	here := protocol.LatLng{Lat: *lat, Lng: *lng}
	if err := driver.Location(ctx, here.Lat, here.Lng); err != nil {
		return fmt.Errorf("driver location: %w", err)
	}
	// Keep the driver fresh for the dispatcher (it forgets drivers unheard
	// of for 15 s) until the ride ends.
	go func() {
		t := time.NewTicker(3 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				driver.Location(ctx, here.Lat, here.Lng)
			}
		}
	}()
	say("driver on duty at %.4f,%.4f", here.Lat, here.Lng)

	pickup := protocol.LatLng{Lat: here.Lat + 0.0015, Lng: here.Lng + 0.001}
	dropoff := protocol.LatLng{Lat: here.Lat + 0.02, Lng: here.Lng + 0.015}
	// The dispatcher learns of the driver through the event log: a request
	// sent at once may find nobody yet, so ask again until an offer comes.
	var tripID string
	var offer *protocol.OfferMessage
	for offer == nil {
		if tripID, err = rider.RequestRide(ctx, pickup, dropoff); err != nil {
			return fmt.Errorf("request: %w", err)
		}
		say("rider requested trip %s", tripID)
		offer, err = driverTrips.offer(ctx, tripID, 15*time.Second)
		if err != nil {
			return err
		}
		if offer == nil {
			say("no offer yet; cancelling and asking again")
			if _, err := rider.Cancel(ctx, tripID); err != nil && !errors.Is(err, client.ErrConflict) {
				return fmt.Errorf("cancel: %w", err)
			}
		}
	}
	say("driver got offer %s (%.0f m to the pickup)", offer.OfferID, offer.PickupDistanceM)

	steps := []struct {
		name  string
		state string
		do    func(context.Context, string) (protocol.Answer, error)
	}{
		{"accept", protocol.StateAccepted, func(ctx context.Context, trip string) (protocol.Answer, error) {
			return driver.Accept(ctx, trip, offer.OfferID)
		}},
		{"arrive", protocol.StateArrived, driver.Arrive},
		{"start", protocol.StateInProgress, driver.Start},
		{"complete", protocol.StateCompleted, driver.Complete},
	}
	for _, s := range steps {
		if _, err := s.do(ctx, tripID); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		// The next step only after this one's trip push (the gateway
		// checks each command against the applied state).
		for _, w := range []*watcher{driverTrips, riderTrips} {
			if err := w.state(ctx, tripID, s.state); err != nil {
				return err
			}
		}
		say("driver %s: both phones see %s", s.name, s.state)
	}
	want := []string{protocol.StateAccepted, protocol.StateArrived, protocol.StateInProgress, protocol.StateCompleted}
	for _, w := range []*watcher{riderTrips, driverTrips} {
		got := w.states(tripID)
		if i := slices.Index(got, want[0]); i < 0 || !slices.Equal(got[i:], want) {
			return fmt.Errorf("%s saw states %v, want them to end with %v", w.who, got, want)
		}
	}
	say("ride %s completed", tripID)
	return nil
}

// connect gets a development token and dials.
func connect(ctx context.Context, base, tokenURL, role, sub string) (*client.Client, error) {
	getToken := func(ctx context.Context) (string, error) { return devToken(ctx, tokenURL, role, sub) }
	c, err := client.Dial(ctx, base, "", client.Options{Token: getToken})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", role, sub, err)
	}
	return c, nil
}

// devToken asks the development token endpoint for a token.
func devToken(ctx context.Context, url, role, sub string) (string, error) {
	body, _ := json.Marshal(map[string]string{"role": role, "sub": sub})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Token   string `json:"token"`
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out); err != nil || out.Token == "" {
		return "", fmt.Errorf("token from %s: %s %s %s (%v); is development auth on?", url, resp.Status, out.Error, out.Message, err)
	}
	return out.Token, nil
}

// watcher keeps a client's pushes for the ride to wait on.
type watcher struct {
	who     string
	updated chan struct{}
	pushes  chan []client.Push // holds the list; take and put back
}

func follow(who string, c *client.Client) *watcher {
	w := &watcher{who: who, updated: make(chan struct{}, 1), pushes: make(chan []client.Push, 1)}
	w.pushes <- nil
	go func() {
		for p := range c.Pushes() {
			l := <-w.pushes
			w.pushes <- append(l, p)
			select {
			case w.updated <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

func (w *watcher) snapshot() []client.Push {
	l := <-w.pushes
	w.pushes <- l
	return l
}

// wait reports whether find found what it wants in the pushes before the
// timeout; it fails only when ctx ends.
func (w *watcher) wait(ctx context.Context, timeout time.Duration, find func([]client.Push) bool) (bool, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		if find(w.snapshot()) {
			return true, nil
		}
		select {
		case <-w.updated:
		case <-t.C:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

func (w *watcher) offer(ctx context.Context, tripID string, timeout time.Duration) (*protocol.OfferMessage, error) {
	var o *protocol.OfferMessage
	_, err := w.wait(ctx, timeout, func(l []client.Push) bool {
		for _, p := range l {
			if p.Offer != nil && p.Offer.TripID == tripID {
				o = p.Offer
				return true
			}
		}
		return false
	})
	return o, err
}

func (w *watcher) state(ctx context.Context, tripID, state string) error {
	ok, err := w.wait(ctx, 20*time.Second, func(l []client.Push) bool { return slices.Contains(states(l, tripID), state) })
	if err == nil && !ok {
		err = fmt.Errorf("no %s push for trip %s within 20s", state, tripID)
	}
	return err
}

func (w *watcher) states(tripID string) []string { return states(w.snapshot(), tripID) }

func states(l []client.Push, tripID string) []string {
	var out []string
	for _, p := range l {
		if p.Trip != nil && p.Trip.TripID == tripID {
			out = append(out, p.Trip.State)
		}
	}
	return out
}
