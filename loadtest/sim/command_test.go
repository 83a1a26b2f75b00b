package sim

import (
	"strings"
	"testing"
)

// TestTargetMustBeLoopback: the command refuses a target that is not on
// this machine with exit status 2 and a message naming the address and the
// rule, before connecting anywhere; loopback targets get past the check (and
// here fail to connect, with status 1).
func TestTargetMustBeLoopback(t *testing.T) {
	for _, c := range []struct {
		target string
		code   int
	}{
		{"http://10.0.0.1:8080", ExitUsage},
		{"http://example.com", ExitUsage},
		{"https://8.8.8.8", ExitUsage},
		{"http://127.0.0.1:1", ExitError},
		{"http://localhost:9", ExitError},
		{"http://[::1]:9", ExitError},
	} {
		t.Run(c.target, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr strings.Builder
			code := Command(t.Context(), "loadtest", []string{"-target", c.target, "-duration", "1s", "-quiet"}, &stdout, &stderr)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, c.code, stderr.String())
			}
			msg := stderr.String()
			if c.code == ExitUsage {
				u := strings.TrimPrefix(strings.TrimPrefix(c.target, "http://"), "https://")
				host := strings.Split(u, ":")[0]
				for _, want := range []string{host, "not a loopback", "127.0.0.0/8", "::1", "localhost"} {
					if !strings.Contains(msg, want) {
						t.Errorf("message lacks %q:\n%s", want, msg)
					}
				}
			} else if strings.Contains(msg, "not a loopback") {
				t.Errorf("loopback target refused:\n%s", msg)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := Command(t.Context(), "loadtest", []string{"-h"}, &stdout, &stderr); code != ExitOK {
		t.Errorf("-h: exit %d", code)
	}
	for _, flag := range []string{"-drivers", "-rate", "-duration", "-ramp", "-target", "-seed", "-json", "-html"} {
		if !strings.Contains(stderr.String(), flag) {
			t.Errorf("usage lacks %s", flag)
		}
	}
	for _, args := range [][]string{{"-accept", "2"}, {"-drivers", "-1"}, {"-nope"}, {"extra"}} {
		stderr.Reset()
		if code := Command(t.Context(), "loadtest", args, &stdout, &stderr); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
}
