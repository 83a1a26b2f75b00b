package supply

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hexride/hexride/internal/redistest"
)

func TestRecordKeepsTheNewestChange(t *testing.T) {
	r := Record{RDB: redistest.Start(t).Client(t)}
	ctx := context.Background()
	t0 := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	steps := []struct {
		driver    string
		at        time.Duration
		available bool
	}{
		{"d1", 0, true},
		{"d2", 0, true},
		{"d2", time.Second, false},
		{"d2", 500 * time.Millisecond, true}, // older than what is recorded: ignored
		{"d3", 0, false},
		{"d4", time.Second, true},
		{"d4", time.Second, true}, // a resend
	}
	for _, s := range steps {
		if err := r.Set(ctx, s.driver, t0.Add(s.at), s.available); err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.Available(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "map[d1:true d4:true]" {
		t.Fatalf("available = %v, want d1 and d4", got)
	}
}

func TestAvailableReadsEveryDriver(t *testing.T) {
	r := Record{RDB: redistest.Start(t).Client(t)}
	ctx := context.Background()
	const n = 3*scanCount + 7 // several HSCAN steps
	pipe := r.RDB.Pipeline()
	for i := range n {
		pipe.HSet(ctx, availabilityKey, fmt.Sprintf("d%d", i), fmt.Sprintf("1:%d", i%2))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := r.Available(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n/2 {
		t.Fatalf("%d available, want %d", len(got), n/2)
	}
}
