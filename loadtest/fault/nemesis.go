package fault

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Fault kinds.
const (
	KindKill        = "kill"         // SIGKILL a service, start it again at once
	KindPause       = "pause"        // SIGSTOP a service, SIGCONT after For: a stale writer wakes
	KindRedisKill   = "redis-kill"   // SIGKILL redis-server, start it on its AOF after For
	KindBrokerPause = "broker-pause" // SIGSTOP the broker for For
	KindBrokerKill  = "broker-kill"  // SIGKILL the broker, start it on its data dir
)

// Fault is one planned fault and, once done, what happened.
type Fault struct {
	At     time.Duration `json:"at_ns"`
	Kind   string        `json:"kind"`
	Target string        `json:"target"`
	For    time.Duration `json:"for_ns,omitempty"`
	// Started is when it was begun, from the start of the load; Err why it
	// could not be done.
	Started time.Duration `json:"started_ns,omitempty"`
	Took    time.Duration `json:"took_ns,omitempty"`
	Err     string        `json:"error,omitempty"`
}

func (f Fault) String() string {
	s := fmt.Sprintf("%6.1fs  %-12s %-12s", f.At.Seconds(), f.Kind, f.Target)
	if f.For > 0 {
		s += fmt.Sprintf(" for %.1fs", f.For.Seconds())
	}
	return s
}

// Schedule plans the nemesis for a load of the given length: from 8 s in
// until 15 s before its end, about one fault every 10 s, always at least a
// gateway kill, a dispatcher kill, a 2–5 s pause of a service, a Redis kill
// and a 10 s broker pause, the rest kills and pauses of random services. The same seed gives the same plan.
func Schedule(seed uint64, load time.Duration, services []string, brokerKill bool) []Fault {
	rng := rand.New(rand.NewPCG(seed, 0xfa17))
	start, end := 8*time.Second, load-15*time.Second
	if end <= start {
		return nil
	}
	n := max(6, int((end-start)/(10*time.Second)))
	pick := func(prefix string) string {
		var of []string
		for _, s := range services {
			if strings.HasPrefix(s, prefix) {
				of = append(of, s)
			}
		}
		if len(of) == 0 {
			return ""
		}
		return of[rng.IntN(len(of))]
	}
	fs := []Fault{{Kind: KindRedisKill, Target: "redis", For: time.Second},
		{Kind: KindBrokerPause, Target: "broker", For: 10 * time.Second}}
	// Every plan restarts a gateway and a dispatcher (under its own name,
	// what a deploy does) and wakes a stale writer after a pause.
	if g := pick("gateway"); g != "" {
		fs = append(fs, Fault{Kind: KindKill, Target: g})
	}
	if d := pick("dispatcher"); d != "" {
		fs = append(fs, Fault{Kind: KindKill, Target: d})
	}
	if len(services) > 0 {
		fs = append(fs, Fault{Kind: KindPause, Target: services[rng.IntN(len(services))],
			For: 2*time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))})
	}
	if brokerKill {
		fs = append(fs, Fault{Kind: KindBrokerKill, Target: "broker"})
	}
	for len(fs) < n {
		svc := services[rng.IntN(len(services))]
		if rng.IntN(2) == 0 {
			fs = append(fs, Fault{Kind: KindKill, Target: svc})
		} else {
			fs = append(fs, Fault{Kind: KindPause, Target: svc,
				For: 2*time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))})
		}
	}
	rng.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
	slot := (end - start) / time.Duration(len(fs))
	for i := range fs {
		jitter := time.Duration(rng.Int64N(int64(slot / 3)))
		fs[i].At = (start + time.Duration(i)*slot + jitter).Round(100 * time.Millisecond)
	}
	slices.SortFunc(fs, func(a, b Fault) int { return int(a.At - b.At) })
	return fs
}

// Nemesis does the planned faults one after another, each at its time from
// begin (or as soon as the one before is over), until the plan or ctx
// ends. A pause in progress is always resumed and a killed process always
// started again, even when ctx ends.
func (c *Cluster) Nemesis(ctx context.Context, begin time.Time, plan []Fault, logf func(string, ...any)) []Fault {
	done := slices.Clone(plan)
	for i := range done {
		f := &done[i]
		select {
		case <-ctx.Done():
			f.Err = "not done: the run ended first"
			continue
		case <-time.After(time.Until(begin.Add(f.At))):
		}
		f.Started = time.Since(begin)
		err := c.inject(ctx, *f)
		f.Took = time.Since(begin) - f.Started
		if err != nil {
			f.Err = err.Error()
		}
		logf("nemesis: %s: took %.1fs %s", f, f.Took.Seconds(), f.Err)
	}
	return done
}

func (c *Cluster) inject(ctx context.Context, f Fault) error {
	p := c.Proc(f.Target)
	if p == nil {
		return fmt.Errorf("no process %q", f.Target)
	}
	// Restarts get their own context: a process killed must come back even
	// if the run is ending, so the drain and the checker see a whole
	// platform.
	restart := func() error {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		return p.Start(rctx)
	}
	pause := func() error {
		if err := p.Signal(syscall.SIGSTOP); err != nil {
			return err
		}
		t := time.NewTimer(f.For)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		return p.Signal(syscall.SIGCONT)
	}
	switch f.Kind {
	case KindKill, KindBrokerKill:
		if err := p.Kill(); err != nil {
			return err
		}
		return restart()
	case KindRedisKill:
		if err := p.Kill(); err != nil {
			return err
		}
		time.Sleep(f.For) // the outage itself
		return restart()
	case KindPause, KindBrokerPause:
		return pause()
	}
	return fmt.Errorf("unknown fault kind %q", f.Kind)
}
