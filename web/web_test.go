package web

import (
	"encoding/json"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/hexride/hexride/ride"
)

func testCity() *City {
	c := ride.LatLng{Lat: 37.7749, Lng: -122.4194}
	return &City{Center: c, Streets: []Street{
		{A: ride.LatLng{Lat: 37.76, Lng: -122.43}, B: ride.LatLng{Lat: 37.79, Lng: -122.43}, Arterial: true},
		{A: ride.LatLng{Lat: 37.76, Lng: -122.43}, B: ride.LatLng{Lat: 37.76, Lng: -122.40}},
	}}
}

func serve(t *testing.T, city *City) *httptest.Server {
	t.Helper()
	routes, err := Routes(city)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, h := range routes {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestServesThePage(t *testing.T) {
	srv := serve(t, testCity())
	tests := []struct {
		path, wantType, wantBody string
		wantCSP                  bool
	}{
		{"/", "text/html", `<canvas id="map"`, true},
		{"/static/map.js", "javascript", "map.inspect", true},
		{"/static/map.css", "text/css", "#panel", true},
		{"/static/favicon.svg", "image/svg+xml", "<svg", true},
		{"/favicon.ico", "image/svg+xml", "<svg", true}, // redirected
		{"/map/city", "application/json", `"streets"`, false},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			res, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %s", tc.path, res.Status)
			}
			if ct := res.Header.Get("Content-Type"); !strings.Contains(ct, tc.wantType) {
				t.Errorf("GET %s: Content-Type %q, want %q", tc.path, ct, tc.wantType)
			}
			if !strings.Contains(string(body), tc.wantBody) {
				t.Errorf("GET %s: body lacks %q", tc.path, tc.wantBody)
			}
			if tc.wantCSP && !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'self'") {
				t.Errorf("GET %s: no same-origin Content-Security-Policy", tc.path)
			}
		})
	}
	for _, p := range []string{"/static/nope.js", "/index.htm"} {
		res, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", p, res.Status)
		}
	}
}

// Everything the page loads is ours: no asset names another host (the
// only absolute URL allowed is the SVG namespace, which is not fetched).
func TestAssetsLoadNothingFromElsewhere(t *testing.T) {
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range url.FindAllString(string(b), -1) {
			if m != "http://www.w3.org" {
				t.Errorf("%s refers to %s: the map must work offline", path, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCityGeometry(t *testing.T) {
	srv := serve(t, testCity())
	res, err := http.Get(srv.URL + "/map/city")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var g cityGeometry
	if err := json.NewDecoder(res.Body).Decode(&g); err != nil {
		t.Fatal(err)
	}
	if len(g.Streets) != 2 || g.Streets[0][4] != 1 || g.Streets[1][4] != 0 {
		t.Fatalf("streets %v: want the two streets, the first an arterial", g.Streets)
	}
	if g.Bounds == nil || g.Bounds.South != 37.76 || g.Bounds.North != 37.79 || g.Bounds.West != -122.43 {
		t.Fatalf("bounds %+v: want the streets' extent", g.Bounds)
	}
	if len(g.Grid) < 10 || g.GridRes != 8 {
		t.Fatalf("grid of %d cells at res %d: want the H3 res-8 cells over a 3 km box", len(g.Grid), g.GridRes)
	}
	for _, loop := range g.Grid {
		if len(loop) < 10 || len(loop)%2 != 0 {
			t.Fatalf("cell outline %v: want at least 5 lat,lng pairs", loop)
		}
	}

	// Without a city the page still gets a valid, empty geometry.
	none := serve(t, nil)
	res2, err := http.Get(none.URL + "/map/city")
	if err != nil {
		t.Fatal(err)
	}
	defer res2.Body.Close()
	b, _ := io.ReadAll(res2.Body)
	if string(b) != `{"center":null,"bounds":null,"streets":[],"grid":[],"grid_res":0}` {
		t.Fatalf("no city: %s", b)
	}
}

func TestBadCityIsRefused(t *testing.T) {
	good := testCity()
	tests := []struct {
		name string
		city City
	}{
		{"no streets", City{Center: good.Center}},
		{"centre off the globe", City{Center: ride.LatLng{Lat: 91}, Streets: good.Streets}},
		{"street with NaN", City{Center: good.Center, Streets: []Street{{A: ride.LatLng{Lat: math.NaN()}, B: good.Center}}}},
		{"grid far too fine", City{Center: good.Center, Streets: good.Streets, GridRes: 13}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Routes(&tc.city); err == nil {
				t.Fatal("Routes accepted it")
			}
		})
	}
}
