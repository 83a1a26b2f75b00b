package events

// Event types, grouped by the topic that carries them.
const (
	// On TopicDriverEvents.
	TypeDriverLocation     = "driver.location"
	TypeDriverAvailability = "driver.availability"

	// On TopicTripCommands, from phones through the gateway. They are named
	// after the WebSocket command that caused them.
	TypeRideRequest  = "ride.request"
	TypeOfferAccept  = "offer.accept"
	TypeOfferDecline = "offer.decline"
	TypeTripArrive   = "trip.arrive"
	TypeTripStart    = "trip.start"
	TypeTripComplete = "trip.complete"
	TypeTripCancel   = "trip.cancel"

	// On TopicTripCommands, from the dispatcher.
	TypeDispatchOffer     = "dispatch.offer"
	TypeDispatchExpire    = "dispatch.expire"
	TypeDispatchNoDrivers = "dispatch.no_drivers"

	// On TopicTripCommands, from tripstate itself: the backstop that ends a
	// search the dispatcher never ended.
	TypeTripDeadline = "trip.deadline"

	// On TopicTripEvents.
	TypeTripUpdated = "trip.updated"

	// On TopicUserPushes.
	TypePush = "push"

	// On TopicDeadLetters.
	TypeDeadLetter = "dead.letter"
)

// TopicTypes says which event types each topic carries; the AsyncAPI document
// is checked against it.
var TopicTypes = map[string][]string{
	TopicDriverEvents: {TypeDriverLocation, TypeDriverAvailability},
	TopicTripCommands: {TypeRideRequest, TypeOfferAccept, TypeOfferDecline, TypeTripArrive, TypeTripStart,
		TypeTripComplete, TypeTripCancel, TypeDispatchOffer, TypeDispatchExpire, TypeDispatchNoDrivers, TypeTripDeadline},
	TopicTripEvents:  {TypeTripUpdated},
	TopicUserPushes:  {TypePush},
	TopicDeadLetters: {TypeDeadLetter},
}

// DeadLetter records an event a consumer gave up on, with where it came from.
type DeadLetter struct {
	Reason    string `json:"reason"`
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	Value     string `json:"value"`
}
