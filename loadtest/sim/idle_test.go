package sim

import (
	"strings"
	"testing"
)

func TestParseTargetStats(t *testing.T) {
	const full = `# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 3.5e+07
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 7e+06
# TYPE go_goroutines gauge
go_goroutines 381
# TYPE hexride_gateway_connections gauge
hexride_gateway_connections{role="driver"} 10
hexride_gateway_connections{role="rider"} 2
`
	for _, tc := range []struct {
		name, body string
		want       TargetStats
		wantErr    string
	}{
		{"all figures, connections summed over roles", full,
			TargetStats{RSSBytes: 3.5e7, HeapInuse: 7e6, Goroutines: 381, Connections: 12}, ""},
		{"no sockets yet", strings.Split(full, "# TYPE hexride")[0],
			TargetStats{RSSBytes: 3.5e7, HeapInuse: 7e6, Goroutines: 381}, ""},
		{"not a Go process", "# TYPE up gauge\nup 1\n", TargetStats{}, "no process_resident_memory_bytes"},
		{"not Prometheus text", "<html>hello</html>", TargetStats{}, "parse target metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTargetStats(strings.NewReader(tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
