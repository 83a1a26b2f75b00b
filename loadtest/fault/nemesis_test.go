package fault

import (
	"reflect"
	"testing"
	"time"
)

// TestScheduleAlwaysHasTheNamedFaults: whatever the seed, a plan restarts a
// gateway and a dispatcher, pauses a service, kills Redis and pauses the
// broker; the same seed gives the same plan.
func TestScheduleAlwaysHasTheNamedFaults(t *testing.T) {
	services := []string{"gateway-1", "gateway-2", "dispatcher-1", "dispatcher-2", "tripstate-1", "tripstate-2"}
	for seed := uint64(1); seed <= 20; seed++ {
		plan := Schedule(seed, time.Minute, services, false)
		has := map[string]bool{}
		for _, f := range plan {
			switch {
			case f.Kind == KindKill && f.Target[:7] == "gateway":
				has["gateway kill"] = true
			case f.Kind == KindKill && f.Target[:10] == "dispatcher":
				has["dispatcher kill"] = true
			case f.Kind == KindPause:
				has["pause"] = true
			case f.Kind == KindRedisKill:
				has["redis kill"] = true
			case f.Kind == KindBrokerPause:
				has["broker pause"] = true
			}
		}
		if len(has) != 5 {
			t.Errorf("seed %d: plan %v has only %v", seed, plan, has)
		}
		if again := Schedule(seed, time.Minute, services, false); !reflect.DeepEqual(plan, again) {
			t.Errorf("seed %d: two plans differ", seed)
		}
	}
}
