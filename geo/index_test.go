package geo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"
)

// sf is a point in San Francisco; tests scatter drivers around it.
var sf = LatLng{37.7749, -122.4194}

func scatter(r *rand.Rand, center LatLng, spanDeg float64) LatLng {
	return LatLng{center.Lat + (r.Float64()-0.5)*spanDeg, center.Lng + (r.Float64()-0.5)*spanDeg}
}

func bruteForce(pos map[string]LatLng, seen map[string]time.Time, p LatLng, k int, radius float64, fresh time.Time, skip func(string) bool) []Candidate {
	var all []Candidate
	for id, q := range pos {
		if seen[id].Before(fresh) || (skip != nil && skip(id)) {
			continue
		}
		if d := PlanarDistanceM(p, q); d <= radius {
			all = append(all, Candidate{ID: id, Pos: q, DistanceM: d, Seen: seen[id]})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].DistanceM != all[j].DistanceM {
			return all[i].DistanceM < all[j].DistanceM
		}
		return all[i].ID < all[j].ID
	})
	if len(all) > k {
		all = all[:k]
	}
	return all
}

func TestNearestMatchesBruteForce(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		drivers int
		span    float64 // degrees
		k       int
		radius  float64
		res     int
	}{
		{"dense city nearest 5", 2000, 0.3, 5, 3000, 8},
		{"sparse wide radius", 200, 0.5, 5, 20000, 8},
		{"k larger than supply", 30, 0.05, 50, 5000, 8},
		{"fine resolution", 1000, 0.1, 3, 2000, 9},
		{"coarse resolution", 1000, 0.2, 10, 4000, 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(tc.drivers)))
			ix := NewIndex(tc.res)
			pos := map[string]LatLng{}
			seen := map[string]time.Time{}
			for i := range tc.drivers {
				id := fmt.Sprintf("d%d", i)
				p := scatter(r, sf, tc.span)
				at := now.Add(-time.Duration(r.IntN(60)) * time.Second)
				ix.Set(id, p, at)
				pos[id], seen[id] = p, at
			}
			// Move a third of them, some across cells.
			for i := 0; i < tc.drivers; i += 3 {
				id := fmt.Sprintf("d%d", i)
				p := scatter(r, pos[id], 0.01)
				ix.Set(id, p, seen[id])
				pos[id] = p
			}
			fresh := now.Add(-30 * time.Second)
			skip := func(id string) bool { return len(id) > 2 && id[len(id)-1] == '7' }
			for q := range 200 {
				p := scatter(r, sf, tc.span)
				got := ix.Nearest(p, tc.k, tc.radius, fresh, skip)
				want := bruteForce(pos, seen, p, tc.k, tc.radius, fresh, skip)
				if !slices.EqualFunc(got, want, func(a, b Candidate) bool { return a.ID == b.ID }) {
					t.Fatalf("query %d at %v: got %v, want %v", q, p, ids(got), ids(want))
				}
			}
		})
	}
}

func ids(cs []Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%s@%.0fm", c.ID, c.DistanceM)
	}
	return out
}

func TestStaleAndRemovedDriversAreNeverReturned(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	ix := NewIndex(0)
	ix.Set("stale", LatLng{sf.Lat + 0.0001, sf.Lng}, now.Add(-time.Minute))
	ix.Set("fresh", LatLng{sf.Lat + 0.01, sf.Lng}, now)
	ix.Set("gone", LatLng{sf.Lat, sf.Lng + 0.0001}, now)
	ix.Remove("gone")
	ix.Remove("never-there")

	got := ix.Nearest(sf, 5, 5000, now.Add(-15*time.Second), nil)
	if len(got) != 1 || got[0].ID != "fresh" {
		t.Fatalf("got %v, want only the fresh driver", ids(got))
	}
	// A new ping makes the stale driver eligible again, and nearest.
	ix.Set("stale", LatLng{sf.Lat + 0.0001, sf.Lng}, now)
	got = ix.Nearest(sf, 5, 5000, now.Add(-15*time.Second), nil)
	if len(got) != 2 || got[0].ID != "stale" {
		t.Fatalf("got %v, want stale (now fresh) first", ids(got))
	}
	if ix.Len() != 2 {
		t.Fatalf("Len = %d, want 2", ix.Len())
	}
}

func TestRadiusIsRespected(t *testing.T) {
	now := time.Now()
	ix := NewIndex(0)
	ix.Set("far", LatLng{sf.Lat + 0.05, sf.Lng}, now) // about 5.6 km north
	if got := ix.Nearest(sf, 1, 5000, now.Add(-time.Second), nil); len(got) != 0 {
		t.Fatalf("got %v beyond the radius", ids(got))
	}
	if got := ix.Nearest(sf, 1, 6000, now.Add(-time.Second), nil); len(got) != 1 {
		t.Fatalf("got %v, want the driver inside 6 km", ids(got))
	}
}

func TestEligibilityChanges(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	fresh := now.Add(-15 * time.Second)
	near := LatLng{sf.Lat + 0.001, sf.Lng}
	far := LatLng{sf.Lat + 0.02, sf.Lng}
	cases := []struct {
		name string
		do   func(ix *Index)
		want []string
	}{
		{"both eligible", func(*Index) {}, []string{"near", "far"}},
		{"ineligible is never returned", func(ix *Index) { ix.SetEligible("near", false) }, []string{"far"}},
		{"eligible again", func(ix *Index) { ix.SetEligible("near", false); ix.SetEligible("near", true) }, []string{"near", "far"}},
		{"moves while ineligible, returns at its new place", func(ix *Index) {
			ix.SetEligible("near", false)
			ix.Set("near", LatLng{sf.Lat + 0.03, sf.Lng}, now) // across several cells
			ix.SetEligible("near", true)
		}, []string{"far", "near"}},
		{"ineligible then removed", func(ix *Index) { ix.SetEligible("far", false); ix.Remove("far") }, []string{"near"}},
		{"repeated flags are idempotent", func(ix *Index) {
			ix.SetEligible("far", false)
			ix.SetEligible("far", false)
			ix.SetEligible("near", true)
		}, []string{"near"}},
		{"unknown id is ignored", func(ix *Index) { ix.SetEligible("ghost", true) }, []string{"near", "far"}},
		{"stale while eligible", func(ix *Index) { ix.Set("near", near, now.Add(-time.Minute)) }, []string{"far"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ix := NewIndex(0)
			ix.Set("near", near, now)
			ix.Set("far", far, now)
			tc.do(ix)
			got := ix.Nearest(sf, 5, 10000, fresh, nil)
			var gotIDs []string
			for _, c := range got {
				gotIDs = append(gotIDs, c.ID)
			}
			if !slices.Equal(gotIDs, tc.want) {
				t.Fatalf("got %v, want %v", ids(got), tc.want)
			}
		})
	}
}

// TestChurnStaysExact moves, hides, shows and removes drivers at random for
// many rounds, checking every answer against brute force, so the swap-remove
// bookkeeping and the in-cell shortcut cannot drift.
func TestChurnStaysExact(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(7, 7))
	ix := NewIndex(0)
	pos := map[string]LatLng{}
	seen := map[string]time.Time{}
	hidden := map[string]bool{}
	for round := range 3000 {
		id := fmt.Sprintf("d%d", r.IntN(400))
		switch op := r.IntN(10); {
		case op < 6: // move a little, sometimes far
			p, ok := pos[id]
			if !ok || op == 0 {
				p = scatter(r, sf, 0.1)
			} else {
				p = scatter(r, p, 0.004)
			}
			at := now.Add(-time.Duration(r.IntN(30)) * time.Second)
			ix.Set(id, p, at)
			pos[id], seen[id] = p, at
		case op < 8:
			h := r.IntN(2) == 0
			ix.SetEligible(id, !h)
			if _, ok := pos[id]; ok {
				hidden[id] = h
			}
		default:
			ix.Remove(id)
			delete(pos, id)
			delete(seen, id)
			delete(hidden, id)
		}
		if ix.Len() != len(pos) {
			t.Fatalf("round %d: Len %d, want %d", round, ix.Len(), len(pos))
		}
		p := scatter(r, sf, 0.1)
		fresh := now.Add(-20 * time.Second)
		got := ix.Nearest(p, 5, 4000, fresh, nil)
		want := bruteForce(pos, seen, p, 5, 4000, fresh, func(id string) bool { return hidden[id] })
		if !slices.EqualFunc(got, want, func(a, b Candidate) bool { return a.ID == b.ID }) {
			t.Fatalf("round %d at %v: got %v, want %v", round, p, ids(got), ids(want))
		}
	}
}

func TestPlanarDistanceIsCloseToGreatCircle(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for range 1000 {
		a := scatter(r, sf, 0.3)
		b := scatter(r, a, 0.1)
		gc, pl := DistanceM(a, b), PlanarDistanceM(a, b)
		if math.Abs(gc-pl) > 0.001*gc+0.01 {
			t.Fatalf("%v→%v: great circle %.2f m, planar %.2f m", a, b, gc, pl)
		}
	}
}

// TestSteadyUpdatesDoNotAllocate pins the promise of the package comment:
// a ping from a known driver that stays in its cell, and toggling its
// eligibility, allocate nothing.
func TestSteadyUpdatesDoNotAllocate(t *testing.T) {
	now := time.Now()
	ix := NewIndex(0)
	for i := range 1000 {
		ix.Set(fmt.Sprintf("d%d", i), scatter(rand.New(rand.NewPCG(uint64(i), 1)), sf, 0.1), now)
	}
	id, p := "d7", sf
	ix.Set(id, p, now)
	step := 0
	allocs := testing.AllocsPerRun(1000, func() {
		step++
		q := LatLng{p.Lat + float64(step%10)*1e-5, p.Lng} // within ~100 m of the centre point
		ix.Set(id, q, now)
		ix.SetEligible(id, step%2 == 0)
	})
	if allocs != 0 {
		t.Fatalf("steady update allocates %.1f times per call", allocs)
	}
}
