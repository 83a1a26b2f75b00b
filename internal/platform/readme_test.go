package platform

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeDocumentsEverySetting keeps the README's configuration table
// true: every env var the code reads is a row, with the code's default.
func TestReadmeDocumentsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if strings.ToUpper(name) != name { // another table's row (error codes)
			continue
		}
		rows[name] = strings.TrimSpace(cells[2])
	}
	for _, s := range Settings() {
		def, ok := rows[s.Env]
		if !ok {
			t.Errorf("README's configuration table lacks %s", s.Env)
			continue
		}
		want := "`" + s.Default + "`"
		if s.Default == "" {
			want = "*(empty)*"
		}
		if def != want {
			t.Errorf("README gives %s the default %s; the code's is %s", s.Env, def, want)
		}
		delete(rows, s.Env)
	}
	for env := range rows {
		t.Errorf("README documents %s, which the code does not read", env)
	}
}
