package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/hexride/hexride/client"
	"github.com/hexride/hexride/protocol"
)

// A rider asks for a ride and follows it to its end.
func Example_rider() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://127.0.0.1:8080/v1/ws", "RIDER-TOKEN", client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	tripID, err := c.RequestRide(ctx,
		protocol.LatLng{Lat: 37.7749, Lng: -122.4194}, protocol.LatLng{Lat: 37.7890, Lng: -122.4010})
	if err != nil {
		log.Fatal(err)
	}
	for p := range c.Pushes() {
		switch {
		case p.Trip != nil && p.Trip.TripID == tripID:
			fmt.Println("trip", p.Trip.State)
			if protocol.Terminal(p.Trip.State) {
				return
			}
		case p.DriverLocation != nil:
			fmt.Println("driver at", p.DriverLocation.Lat, p.DriverLocation.Lng)
		case p.Resync != nil:
			// Pushes were lost for good: the trip is what resync says.
			if p.Resync.Trip == nil || protocol.Terminal(p.Resync.Trip.State) {
				return
			}
		}
	}
	log.Fatal(c.Err()) // the client stopped
}

// A driver goes on duty, keeps sending its position, accepts the first
// offer and drives it.
func Example_driver() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://127.0.0.1:8080/v1/ws", "DRIVER-TOKEN", client.Options{
		// Asked when the token expires (close 4001).
		Token: func(ctx context.Context) (string, error) { return "A-FRESH-DRIVER-TOKEN", nil },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.SetAvailable(ctx, true); err != nil {
		log.Fatal(err)
	}
	go func() {
		for range time.Tick(3 * time.Second) {
			c.Location(ctx, 37.7749, -122.4194)
		}
	}()
	next := map[string]func(context.Context, string) (protocol.Answer, error){
		protocol.StateAccepted:   c.Arrive,
		protocol.StateArrived:    c.Start,
		protocol.StateInProgress: c.Complete,
	}
	for p := range c.Pushes() {
		switch {
		case p.Offer != nil:
			_, err := c.Accept(ctx, p.Offer.TripID, p.Offer.OfferID)
			if errors.Is(err, client.ErrConflict) {
				continue // the offer expired meanwhile
			}
		case p.Trip != nil && next[p.Trip.State] != nil:
			// Each step after the previous step's trip push.
			next[p.Trip.State](ctx, p.Trip.TripID)
		case p.Trip != nil && p.Trip.State == protocol.StateCompleted:
			return
		}
	}
}

// Contract errors are *client.Error, matched by code.
func ExampleError() {
	var err error = &client.Error{Code: protocol.CodeConflict, Message: "trip is COMPLETED"}
	var e *client.Error
	fmt.Println(errors.Is(err, client.ErrConflict), errors.Is(err, client.ErrNotFound), errors.As(err, &e) && e.Code == "conflict")
	// Output: true false true
}
