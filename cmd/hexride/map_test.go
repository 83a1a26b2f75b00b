package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hexride/hexride/gateway"
	"github.com/hexride/hexride/internal/proctest"
	"github.com/hexride/hexride/protocol"
)

// The one-command run prints where the live map is, and the link opens it
// without another step: a plain link when the page can mint its own viewer
// token (development auth), a link carrying one when it cannot.
func TestDemoPrintsTheLiveMap(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		wantToken bool
	}{
		{"development auth", map[string]string{}, false},
		{"no development auth", map[string]string{"HEXRIDE_DEV_AUTH": "false", "HEXRIDE_JWT_SECRET": "map-test-secret"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"HEXRIDE_ADDR": "127.0.0.1:0", "HEXRIDE_LOG_LEVEL": "warn", "HEXRIDE_DEMO_CITY": "false",
				"HEXRIDE_DEV_SECRET_FILE": filepath.Join(t.TempDir(), "dev-secret")}
			for k, v := range tc.env {
				env[k] = v
			}
			ctx, cancel := context.WithCancel(context.Background())
			out := &proctest.SyncBuffer{}
			done := make(chan error, 1)
			go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, out, io.Discard) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("hexride stopped with %v", err)
				}
			}()
			mapRE := regexp.MustCompile(`Live map:\s+(http://\S+/)(#token=(\S+))?`)
			var m []string
			for start := time.Now(); m == nil; time.Sleep(20 * time.Millisecond) {
				if m = mapRE.FindStringSubmatch(out.String()); m == nil && time.Since(start) > 10*time.Second {
					t.Fatalf("no live map link printed within 10s; output: %s", out.String())
				}
			}
			if got := m[3] != ""; got != tc.wantToken {
				t.Fatalf("link %q carries a token: %v, want %v", m[0], got, tc.wantToken)
			}
			if tc.wantToken {
				tokens, err := gateway.NewTokens(env["HEXRIDE_JWT_SECRET"])
				if err != nil {
					t.Fatal(err)
				}
				c, err := tokens.Verify(m[3])
				if err != nil || c.Role != protocol.RoleViewer {
					t.Fatalf("the link's token: %+v, %v; want a valid viewer token", c, err)
				}
			}
			res, err := http.Get(m[1])
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `<canvas id="map"`) {
				t.Fatalf("GET %s: %s, want the map page", m[1], res.Status)
			}
		})
	}
}
