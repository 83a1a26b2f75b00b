package dispatch

import (
	"math/rand/v2"
	"testing"
)

const never = 1e12

// bestByPermutation finds, by trying every injective row→column map, the
// most rows placed and then the least total cost.
func bestByPermutation(cost [][]float64) (placed int, total float64) {
	rows, cols := len(cost), len(cost[0])
	used := make([]bool, cols)
	placed, total = -1, 0
	var walk func(i, n int, sum float64)
	walk = func(i, n int, sum float64) {
		if i == rows {
			if n > placed || (n == placed && sum < total-1e-9) {
				placed, total = n, sum
			}
			return
		}
		walk(i+1, n, sum) // row i unassigned
		for j := 0; j < cols; j++ {
			if !used[j] && cost[i][j] < never {
				used[j] = true
				walk(i+1, n+1, sum+cost[i][j])
				used[j] = false
			}
		}
	}
	walk(0, 0, 0)
	return placed, total
}

func TestAssignIsOptimal(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	cases := []struct {
		name       string
		rows, cols int
		sparse     float64 // share of infeasible pairs
	}{
		{"square dense", 5, 5, 0},
		{"more drivers than requests", 3, 7, 0.2},
		{"more requests than drivers", 7, 3, 0.2},
		{"mostly infeasible", 6, 6, 0.7},
		{"single", 1, 1, 0},
		{"all infeasible", 3, 4, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 200 {
				cost := make([][]float64, tc.rows)
				for i := range cost {
					cost[i] = make([]float64, tc.cols)
					for j := range cost[i] {
						cost[i][j] = float64(r.IntN(1000))
						if r.Float64() < tc.sparse {
							cost[i][j] = never
						}
					}
				}
				got := assign(cost, never)
				seen := map[int]bool{}
				n, sum := 0, 0.0
				for i, j := range got {
					if j < 0 {
						continue
					}
					if seen[j] || cost[i][j] >= never {
						t.Fatalf("row %d got column %d (taken or infeasible) in %v", i, j, cost)
					}
					seen[j] = true
					n++
					sum += cost[i][j]
				}
				wantN, wantSum := bestByPermutation(cost)
				if n != wantN || sum > wantSum+1e-9 {
					t.Fatalf("placed %d at cost %v, best is %d at %v\n%v", n, sum, wantN, wantSum, cost)
				}
			}
		})
	}
}
