package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hexride/hexride/audit"
	"github.com/hexride/hexride/audit/audittest"
	"github.com/hexride/hexride/internal/redistest"
	"github.com/hexride/hexride/trip"
)

// runAudit runs hexride with args and env, and returns its exit status as
// main would set it, with what it printed.
func runAudit(t *testing.T, env map[string]string, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	err := run(t.Context(), args, func(k string) string { return env[k] }, &out, &errOut)
	var s exitStatus
	switch {
	case errors.As(err, &s):
		status = int(s)
	case err != nil:
		status = 1
		errOut.WriteString("hexride: " + err.Error() + "\n") // as main prints it
	}
	return status, out.String(), errOut.String()
}

// TestAuditCommandsUsage: wrong arguments are an exit status of 2 and a
// message saying what is wrong; a broker that is not there is an error
// naming it.
func TestAuditCommandsUsage(t *testing.T) {
	brokers := map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "REDIS_ADDR": "127.0.0.1:1"}
	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		status int
		says   string
	}{
		{"history without a trip id", brokers, []string{"history"}, 2, "want one trip id"},
		{"history with two trip ids", brokers, []string{"history", "a", "b"}, 2, "want one trip id"},
		{"history with an unknown flag", brokers, []string{"history", "-follow", "a"}, 2, "flag provided but not defined: -follow"},
		{"history without brokers", nil, []string{"history", "a"}, 2, "no Kafka brokers"},
		{"history with a bad timeout", brokers, []string{"history", "-timeout", "soon", "a"}, 2, "invalid value"},
		{"replay with an argument", brokers, []string{"replay", "everything"}, 2, `unexpected argument "everything"`},
		{"replay with an unknown flag", brokers, []string{"replay", "-dry-run"}, 2, "flag provided but not defined: -dry-run"},
		{"replay without a live redis", map[string]string{"KAFKA_BROKERS": "127.0.0.1:1"}, []string{"replay"}, 2, "no live Redis"},
		{"history, broker unreachable", brokers, []string{"history", "a"}, 1, "127.0.0.1:1"},
		{"replay, broker unreachable", brokers, []string{"replay"}, 1, "127.0.0.1:1"},
		{"history -h", nil, []string{"history", "-h"}, 0, "usage: hexride history [flags] TRIP_ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, stderr := runAudit(t, tc.env, tc.args...)
			if status != tc.status || !strings.Contains(stderr, tc.says) {
				t.Errorf("status %d, stderr %q; want %d and %q", status, stderr, tc.status, tc.says)
			}
		})
	}
}

// TestAuditCommands runs history and replay on the log of a completed and
// a cancelled ride, as a user would.
func TestAuditCommands(t *testing.T) {
	p := audittest.Start(t)
	env := map[string]string{"KAFKA_BROKERS": strings.Join(p.Brokers, ","), "REDIS_ADDR": p.Live.Addr}

	t.Run("history prints the ride in order", func(t *testing.T) {
		status, out, stderr := runAudit(t, env, "history", p.Completed)
		if status != 0 {
			t.Fatalf("status %d: %s", status, stderr)
		}
		want := []string{"command     ride.request", "transition  ∅→REQUESTED v1", "command     dispatch.offer", "transition  REQUESTED→OFFERED v2",
			"command     offer.accept", "transition  OFFERED→ACCEPTED v3", "transition  ACCEPTED→ARRIVED v4",
			"transition  ARRIVED→IN_PROGRESS v5", "transition  IN_PROGRESS→COMPLETED v6", "dead letter trip.arrive"}
		rest := out
		for _, w := range want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Fatalf("no %q after the lines before it in:\n%s", w, out)
			}
			rest = rest[i:]
		}
	})
	t.Run("history -json is a record a line", func(t *testing.T) {
		status, out, stderr := runAudit(t, env, "history", "-json", p.Cancelled)
		if status != 0 {
			t.Fatalf("status %d: %s", status, stderr)
		}
		var states []string
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var r audit.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			if r.Kind == audit.KindTransition {
				states = append(states, r.State)
			}
		}
		if strings.Join(states, " ") != "REQUESTED OFFERED CANCELLED" {
			t.Errorf("transitions %v", states)
		}
	})
	t.Run("history of a trip the log does not have", func(t *testing.T) {
		status, _, stderr := runAudit(t, env, "history", "nope")
		if status != 1 || !strings.Contains(stderr, "no record about trip nope") {
			t.Errorf("status %d, stderr %q", status, stderr)
		}
	})
	t.Run("replay into an embedded store agrees", func(t *testing.T) {
		status, out, stderr := runAudit(t, env, "replay")
		if status != 0 || !strings.Contains(out, "equal:     2\n") || !strings.Contains(out, "OK:") {
			t.Errorf("status %d, out:\n%s\nstderr: %s", status, out, stderr)
		}
	})
	t.Run("replay -json", func(t *testing.T) {
		status, out, stderr := runAudit(t, env, "replay", "-json")
		var rep audit.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil || status != 0 || !rep.Agree || rep.Trips != 2 || rep.Equal != 2 {
			t.Errorf("status %d, report %+v (%v), stderr %s", status, rep, err, stderr)
		}
	})
	t.Run("replay into a redis-server that is not empty is refused", func(t *testing.T) {
		status, _, stderr := runAudit(t, env, "replay", "-into", p.Live.Addr)
		if status != 1 || !strings.Contains(stderr, "only into an empty store") {
			t.Errorf("status %d, stderr %q", status, stderr)
		}
	})
	t.Run("replay after tampering names the trip and fails", func(t *testing.T) {
		key := trip.TripKey(p.Completed)
		ctx := context.Background()
		orig, err := p.LiveRDB.HGet(ctx, key, "json").Result()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.LiveRDB.HSet(ctx, key, "json", orig) })
		if err := p.LiveRDB.HSet(ctx, key, "json", strings.Replace(orig, `"COMPLETED"`, `"CANCELLED"`, 1)).Err(); err != nil {
			t.Fatal(err)
		}
		into := redistest.Start(t)
		status, out, _ := runAudit(t, env, "replay", "-into", into.Addr)
		if status != 1 || !strings.Contains(out, "differing: 1\n  "+p.Completed+": live CANCELLED v6") {
			t.Errorf("status %d, out:\n%s", status, out)
		}
	})
}
