package sim

import (
	"strings"
	"testing"
)

func TestCheckTarget(t *testing.T) {
	for _, c := range []struct {
		target string
		ok     bool
	}{
		{"http://10.0.0.1:8080", false},
		{"http://example.com", false},
		{"https://8.8.8.8", false},
		{"http://localhost.example.com:8080", false}, // names are not resolved
		{"http://[2001:db8::1]:80", false},
		{"http://[::ffff:10.0.0.1]:80", false},
		{"http://0.0.0.0:8080", false},
		{"ws://127.0.0.1:8080", false}, // the base URL is http(s)
		{"127.0.0.1:8080", false},
		{"http://:8080", false},

		{"http://127.0.0.1:8080", true},
		{"http://localhost:9", true},
		{"http://[::1]:80", true},
		{"http://LOCALHOST:8080", true},
		{"http://127.8.9.10:1", true},
		{"https://127.0.0.1", true},
		{"http://[::ffff:127.0.0.1]:80", true},
	} {
		u, err := CheckTarget(c.target)
		switch {
		case c.ok && err != nil:
			t.Errorf("CheckTarget(%q) refused a loopback target: %v", c.target, err)
		case c.ok && u == nil:
			t.Errorf("CheckTarget(%q) returned no URL", c.target)
		case !c.ok && err == nil:
			t.Errorf("CheckTarget(%q) accepted a target that is not loopback", c.target)
		}
	}
}

// TestCheckTargetMessage: the refusal names the address and the rule.
func TestCheckTargetMessage(t *testing.T) {
	_, err := CheckTarget("http://10.0.0.1:8080")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"10.0.0.1", "127.0.0.0/8", "::1", "localhost"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not name %q", err, want)
		}
	}
}

// TestRunRefusesNonLoopback: the library refuses too, not only the command.
func TestRunRefusesNonLoopback(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Target = "http://example.com"
	rep, err := Run(t.Context(), cfg, nil)
	if err == nil || rep != nil || !strings.Contains(err.Error(), "not a loopback") {
		t.Fatalf("Run = %v, %v; want a refusal", rep, err)
	}
}
