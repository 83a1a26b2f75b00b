// Package web owns the live map's page: its HTML, script and style, embedded
// in the binary and served by the gateway, and the static city geometry
// (streets and the H3 grid) the page draws under the live feed. The feed
// itself is the viewer WebSocket (packages livemap and gateway). Nothing the
// page needs comes from anywhere but this server, so the map works on a
// machine with no internet.
package web

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/http"

	"github.com/hexride/hexride/livemap"
	"github.com/hexride/hexride/ride"
)

//go:embed static
var static embed.FS

// City is the street network drawn under the map (the simulator's grid in
// the one-command run). Without one the page draws the hexagons and drivers
// on a plain background.
type City struct {
	Center  ride.LatLng
	Streets []Street
	// GridRes is the resolution of the H3 grid drawn over the city (8).
	GridRes int
}

// Street is one straight street segment.
type Street struct {
	A, B     ride.LatLng
	Arterial bool
}

// csp keeps the page honest about serving everything itself: the browser
// refuses any script, style, font, image or connection from elsewhere.
const csp = "default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Routes returns the page's handlers, keyed by mux pattern, for
// gateway.Server.Handle (platform.Options.Mount).
func Routes(city *City) (map[string]http.Handler, error) {
	geo, err := cityJSON(city)
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("web: embedded assets: %w", err)
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		return nil, fmt.Errorf("web: embedded index.html: %w", err)
	}
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return map[string]http.Handler{
		"GET /{$}": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Content-Security-Policy", csp)
			h.Set("Cache-Control", "no-cache")
			_, _ = w.Write(index)
		}),
		"GET /static/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", csp)
			w.Header().Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r)
		}),
		"GET /favicon.ico": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/static/favicon.svg", http.StatusMovedPermanently)
		}),
		"GET /map/city": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "max-age=60")
			_, _ = w.Write(geo)
		}),
	}, nil
}

// cityGeometry is GET /map/city: streets as [lat1, lng1, lat2, lng2,
// arterial 0/1], grid cells as flat [lat, lng, ...] outlines.
type cityGeometry struct {
	Center  *ride.LatLng `json:"center"`
	Bounds  *bounds      `json:"bounds"`
	Streets [][]float64  `json:"streets"`
	Grid    [][]float64  `json:"grid"`
	GridRes int          `json:"grid_res"`
}

type bounds struct {
	South float64 `json:"south"`
	West  float64 `json:"west"`
	North float64 `json:"north"`
	East  float64 `json:"east"`
}

func validLatLng(p ride.LatLng) bool {
	return !math.IsNaN(p.Lat) && !math.IsNaN(p.Lng) && p.Lat >= -90 && p.Lat <= 90 && p.Lng >= -180 && p.Lng <= 180
}

func cityJSON(c *City) ([]byte, error) {
	g := cityGeometry{Streets: [][]float64{}, Grid: [][]float64{}}
	if c == nil {
		return json.Marshal(g)
	}
	if !validLatLng(c.Center) {
		return nil, fmt.Errorf("web: city centre %v is not a WGS84 position", c.Center)
	}
	if len(c.Streets) == 0 {
		return nil, errors.New("web: a city needs at least one street")
	}
	res := c.GridRes
	if res == 0 {
		res = 8
	}
	b := bounds{South: c.Center.Lat, North: c.Center.Lat, West: c.Center.Lng, East: c.Center.Lng}
	for i, s := range c.Streets {
		if !validLatLng(s.A) || !validLatLng(s.B) {
			return nil, fmt.Errorf("web: street %d (%v–%v) is not a pair of WGS84 positions", i, s.A, s.B)
		}
		arterial := 0.0
		if s.Arterial {
			arterial = 1
		}
		g.Streets = append(g.Streets, []float64{s.A.Lat, s.A.Lng, s.B.Lat, s.B.Lng, arterial})
		for _, p := range []ride.LatLng{s.A, s.B} {
			b.South, b.North = min(b.South, p.Lat), max(b.North, p.Lat)
			b.West, b.East = min(b.West, p.Lng), max(b.East, p.Lng)
		}
	}
	// A margin of about one cell, so the grid covers the city's edge.
	m := 0.005
	cells, err := livemap.Grid(b.South-m, b.West-m, b.North+m, b.East+m, res)
	if err != nil {
		return nil, fmt.Errorf("web: city grid: %w", err)
	}
	for _, loop := range cells {
		flat := make([]float64, 0, 2*len(loop))
		for _, p := range loop {
			flat = append(flat, math.Round(p.Lat*1e6)/1e6, math.Round(p.Lng*1e6)/1e6)
		}
		g.Grid = append(g.Grid, flat)
	}
	g.Center, g.Bounds, g.GridRes = &c.Center, &b, res
	return json.Marshal(g)
}
