package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/hexride/hexride/audit"
	"github.com/hexride/hexride/events/kafka"
	"github.com/hexride/hexride/internal/conf"
)

// exitUsage is the status of a command given the wrong arguments, as the
// flag package's own errors are.
const exitUsage = exitStatus(2)

// auditFlags are the settings history and replay share.
type auditFlags struct {
	set     *conf.Set
	brokers string
	json    bool
	timeout time.Duration
}

func newAuditFlags(name, args string, getenv func(string) string, stderr io.Writer) *auditFlags {
	f := &auditFlags{set: conf.New("hexride "+name, getenv)}
	fs := f.set.FS
	fs.SetOutput(stderr)
	f.set.String(&f.brokers, "brokers", "KAFKA_BROKERS", "", "comma-separated Kafka brokers to read the log from")
	fs.BoolVar(&f.json, "json", false, "print JSON for machines instead of text")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, strings.TrimSpace("usage: hexride "+name+" [flags] "+args))
		fs.PrintDefaults()
	}
	return f
}

// parse parses args; a usage error has been reported when it returns one.
func (f *auditFlags) parse(args []string) error {
	if err := f.set.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		if f.set.FS.Parsed() { // the flag package printed its error and the usage
			return exitUsage
		}
		return f.usage("%v", err) // a bad environment value
	}
	if len(kafka.ParseBrokers(f.brokers)) == 0 {
		return f.usage("no Kafka brokers: give -brokers or set KAFKA_BROKERS (a one-process hexride's embedded broker cannot be reached from outside it)")
	}
	return nil
}

func (f *auditFlags) usage(format string, args ...any) error {
	out := f.set.FS.Output()
	fmt.Fprintf(out, "%s: %s\n", f.set.FS.Name(), fmt.Sprintf(format, args...))
	f.set.FS.Usage()
	return exitUsage
}

// historyCommand implements `hexride history TRIP_ID`: every record about
// the trip, in log order, one to a line.
func historyCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f := newAuditFlags("history", "TRIP_ID", getenv, stderr)
	if err := f.parse(args); err != nil {
		return ignoreHelp(err)
	}
	if f.set.FS.NArg() != 1 {
		return f.usage("want one trip id, got %d arguments", f.set.FS.NArg())
	}
	id := f.set.FS.Arg(0)
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	recs, err := audit.History(ctx, kafka.ParseBrokers(f.brokers), id)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		fmt.Fprintf(stderr, "hexride history: the log has no record about trip %s\n", id)
		return exitStatus(1)
	}
	enc := json.NewEncoder(stdout)
	for _, r := range recs {
		if f.json {
			err = enc.Encode(r)
		} else {
			_, err = fmt.Fprintln(stdout, r)
		}
		if err != nil {
			return fmt.Errorf("print the history of trip %s: %w", id, err)
		}
	}
	return nil
}

// replayCommand implements `hexride replay`: rebuild every trip from the
// log into an empty Redis and compare with the live one; the status is 1
// when they disagree.
func replayCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f := newAuditFlags("replay", "", getenv, stderr)
	var live, into string
	f.set.String(&live, "redis", "REDIS_ADDR", "", "the live Redis (host:port) tripstate writes, to compare with")
	f.set.FS.StringVar(&into, "into", "", "an empty Redis (host:port) to rebuild into; by default a fresh embedded one, dropped after")
	if err := f.parse(args); err != nil {
		return ignoreHelp(err)
	}
	switch {
	case f.set.FS.NArg() > 0:
		return f.usage("unexpected argument %q", f.set.FS.Arg(0))
	case live == "":
		return f.usage("no live Redis to compare with: give -redis or set REDIS_ADDR")
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if into == "" {
		m := miniredis.NewMiniRedis()
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start an embedded redis to replay into: %w", err)
		}
		defer m.Close()
		into = m.Addr()
	}
	liveRDB := redis.NewClient(&redis.Options{Addr: live})
	defer liveRDB.Close()
	intoRDB := redis.NewClient(&redis.Options{Addr: into})
	defer intoRDB.Close()
	rep, err := audit.Replay(ctx, audit.ReplayConfig{Brokers: kafka.ParseBrokers(f.brokers), Live: liveRDB, Into: intoRDB})
	if err != nil {
		return err
	}
	if f.json {
		err = json.NewEncoder(stdout).Encode(rep)
	} else {
		err = rep.Write(stdout)
	}
	if err != nil {
		return fmt.Errorf("print the replay's report: %w", err)
	}
	if !rep.OK() {
		return exitStatus(1)
	}
	return nil
}

// ignoreHelp turns -h into success: the usage was asked for and printed.
func ignoreHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
