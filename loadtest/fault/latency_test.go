package fault

import (
	"testing"
	"time"
)

func TestAfterFaults(t *testing.T) {
	s := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Second))) }
	ws := []window{{s(10), s(20)}, {s(19), s(21)}, {s(40), s(41)}}
	cases := []struct {
		name string
		a, b float64
		want float64
	}{
		{"met no fault", 1, 3, 2},
		{"sent into a pause, answered 0.5 s after the last fault in its way", 12, 21.5, 0.5},
		{"sent before a fault, held by it", 9, 22, 1},
		{"answered during a fault that did not hold it", 39, 40.5, 0},
		{"a fault after it", 30, 31, 1},
	}
	for _, c := range cases {
		if got := afterFaults(ws, s(c.a), s(c.b)); got != time.Duration(c.want*float64(time.Second)) {
			t.Errorf("%s: %s, want %gs", c.name, got, c.want)
		}
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(ds)
	if p.P50 != 50 || p.P99 != 99 || p.Max != 100 || p.Count != 100 {
		t.Fatalf("%+v", p)
	}
}
