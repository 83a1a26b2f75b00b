package trip

import (
	"os"
	"strings"
	"testing"
)

// TestDocsMatchTransitionTable holds docs/trip-states.md to Transitions.
func TestDocsMatchTransitionTable(t *testing.T) {
	b, err := os.ReadFile("../docs/trip-states.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			continue
		}
		from, cmd, to := strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2]), strings.TrimSpace(cells[3])
		if from == "from" || strings.HasPrefix(from, "-") {
			continue
		}
		if doc[from] == nil {
			doc[from] = map[string]string{}
		}
		doc[from][cmd] = to
	}
	for from, m := range Transitions {
		for cmd, to := range m {
			if doc[from][cmd] != to {
				t.Errorf("docs lack %s --%s--> %s", from, cmd, to)
			}
			delete(doc[from], cmd)
		}
	}
	for from, m := range doc {
		for cmd, to := range m {
			t.Errorf("docs list %s --%s--> %s, which the code does not have", from, cmd, to)
		}
	}
}
