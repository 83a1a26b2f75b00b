package dispatch

import "math"

// assign solves the rectangular assignment problem: it returns, for each
// row, the column it gets (or -1), such that as many rows as possible get a
// feasible column (cost below infeasible) and, among those assignments, the
// total cost is least.
//
// It is the Hungarian algorithm with potentials (Kuhn–Munkres in the
// shortest-augmenting-path form), O(rows²·cols). It is written here because
// no maintained Go implementation is reachable from this project's module
// proxy (the known ones answer 403); it is short, and assign_test.go checks
// it against every permutation on random matrices.
func assign(cost [][]float64, infeasible float64) []int {
	rows := len(cost)
	out := make([]int, rows)
	for i := range out {
		out[i] = -1
	}
	if rows == 0 {
		return out
	}
	cols := len(cost[0])
	// Pad to at least as many columns as rows with infeasible dummies, so
	// every row can be placed; a row placed on a dummy stays unassigned.
	m := max(cols, rows)
	at := func(i, j int) float64 {
		if j >= cols {
			return infeasible
		}
		return cost[i][j]
	}
	u := make([]float64, rows+1)
	v := make([]float64, m+1)
	p := make([]int, m+1) // p[j]: row (1-based) holding column j; p[0] the row being placed
	way := make([]int, m+1)
	minv := make([]float64, m+1)
	used := make([]bool, m+1)
	for i := 1; i <= rows; i++ {
		p[0] = i
		j0 := 0
		for j := range minv {
			minv[j], used[j] = math.Inf(1), false
		}
		for {
			used[j0] = true
			i0, delta, j1 := p[j0], math.Inf(1), 0
			for j := 1; j <= m; j++ {
				if used[j] {
					continue
				}
				if cur := at(i0-1, j-1) - u[i0] - v[j]; cur < minv[j] {
					minv[j], way[j] = cur, j0
				}
				if minv[j] < delta {
					delta, j1 = minv[j], j
				}
			}
			for j := 0; j <= m; j++ {
				if used[j] {
					u[p[j]] += delta
					v[j] -= delta
				} else {
					minv[j] -= delta
				}
			}
			j0 = j1
			if p[j0] == 0 {
				break
			}
		}
		for j0 != 0 {
			j1 := way[j0]
			p[j0] = p[j1]
			j0 = j1
		}
	}
	for j := 1; j <= m; j++ {
		if i := p[j]; i != 0 && j <= cols && cost[i-1][j-1] < infeasible {
			out[i-1] = j - 1
		}
	}
	return out
}
