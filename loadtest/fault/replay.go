package fault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
)

// ReplayCheck is what `hexride replay` found on the state a run left: every
// trip rebuilt from trip.events into an empty store and compared with the
// live one, a hash per trip, and whether the replay published anything.
type ReplayCheck struct {
	Trips     int  `json:"trips"`
	Equal     int  `json:"equal"`
	Differing int  `json:"differing"`
	Missing   int  `json:"missing"`
	Problems  int  `json:"problems"`
	OK        bool `json:"ok"`
	// Published is how many records the topics gained while it ran.
	Published int `json:"published"`
}

// Replay runs the real command, `hexride replay -json`, against the run's
// broker and Redis (rebuilding into an embedded store), and reads the
// topics' sizes before and after to see that it published nothing.
func Replay(ctx context.Context, hexride, broker, redisAddr string) (ReplayCheck, error) {
	before, err := ReadLog(ctx, broker, &History{})
	if err != nil {
		return ReplayCheck{}, err
	}
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, hexride, "replay", "-brokers", broker, "-redis", redisAddr, "-json")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr := cmd.Run() // exit 1 when something differs: the report says what
	var rep struct {
		Trips         int               `json:"trips"`
		Equal         int               `json:"equal"`
		Differing     []json.RawMessage `json:"differing"`
		MissingLive   []string          `json:"missing_live"`
		MissingReplay []string          `json:"missing_replay"`
		Problems      []json.RawMessage `json:"problems"`
		OK            bool              `json:"ok"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return ReplayCheck{}, fmt.Errorf("hexride replay: %v (%v): %s", err, runErr, errOut.String())
	}
	after, err := ReadLog(ctx, broker, &History{})
	if err != nil {
		return ReplayCheck{}, err
	}
	rc := ReplayCheck{Trips: rep.Trips, Equal: rep.Equal, Differing: len(rep.Differing),
		Missing: len(rep.MissingLive) + len(rep.MissingReplay), Problems: len(rep.Problems), OK: rep.OK}
	for topic, n := range after {
		rc.Published += n - before[topic]
	}
	if !maps.Equal(before, after) && rc.Published == 0 {
		rc.Published = 1 // a topic appeared
	}
	return rc, nil
}
