package geo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/redis/go-redis/v9"

	"github.com/hexride/hexride/internal/redistest"
)

// The benchmark city: 30 × 30 km centred on San Francisco's latitude, with
// drivers spread uniformly, as the figures assume.
const (
	cityLatSpan = 30000 / metresPerDegree
	benchRadius = 2000.0
)

var cityLngSpan = cityLatSpan / cosLat(sf.Lat)

func cityPoint(r *rand.Rand) LatLng {
	return LatLng{sf.Lat + (r.Float64()-0.5)*cityLatSpan, sf.Lng + (r.Float64()-0.5)*cityLngSpan}
}

type benchCity struct {
	ids     []string
	pos     []LatLng
	pickups []LatLng
}

func newBenchCity(drivers int) *benchCity {
	r := rand.New(rand.NewPCG(42, uint64(drivers)))
	c := &benchCity{ids: make([]string, drivers), pos: make([]LatLng, drivers), pickups: make([]LatLng, 1<<14)}
	for i := range c.ids {
		c.ids[i] = fmt.Sprintf("driver-%06d", i)
		c.pos[i] = cityPoint(r)
	}
	for i := range c.pickups {
		c.pickups[i] = cityPoint(r)
	}
	return c
}

func (c *benchCity) index(res int, at time.Time) *Index {
	ix := NewIndex(res)
	for i, id := range c.ids {
		ix.Set(id, c.pos[i], at)
	}
	return ix
}

var benchSizes = []int{10_000, 100_000}

// BenchmarkUpdate is one driver's position ping: a move of up to ~15 m (a
// car at city speed between pings), so most stay in their cell and a few
// cross into the next, as in real traffic.
func BenchmarkUpdate(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("drivers=%d", n), func(b *testing.B) {
			c := newBenchCity(n)
			now := time.Now()
			ix := c.index(DefaultResolution, now)
			r := rand.New(rand.NewPCG(1, 2))
			steps := make([]LatLng, 1<<12)
			for i := range steps {
				steps[i] = LatLng{(r.Float64() - 0.5) * 30 / metresPerDegree, (r.Float64() - 0.5) * 30 / metresPerDegree}
			}
			pos := append([]LatLng(nil), c.pos...)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d := i % n
				s := steps[i&(len(steps)-1)]
				pos[d].Lat += s.Lat
				pos[d].Lng += s.Lng
				ix.Set(c.ids[d], pos[d], now)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		})
	}
}

// BenchmarkNearest5 is the dispatcher's question: the 5 nearest fresh,
// eligible drivers within 2 km of a random pickup. The redis-geosearch
// variant asks a real redis-server the same question on the same points
// (GEOSEARCH FROMLONLAT BYRADIUS 2 km ASC COUNT 5) so one run gives the
// ratio.
func BenchmarkNearest5(b *testing.B) {
	for _, n := range benchSizes {
		c := newBenchCity(n)
		b.Run(fmt.Sprintf("index/drivers=%d", n), func(b *testing.B) {
			now := time.Now()
			ix := c.index(DefaultResolution, now)
			fresh := now.Add(-15 * time.Second)
			benchQueries(b, c, func(p LatLng, dst []Candidate) []Candidate {
				return ix.AppendNearest(dst, p, 5, benchRadius, fresh, nil)
			})
		})
	}
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	for _, n := range benchSizes {
		c := newBenchCity(n)
		b.Run(fmt.Sprintf("redis-geosearch/drivers=%d", n), func(b *testing.B) {
			ctx := context.Background()
			key := fmt.Sprintf("bench:drivers:%d", n)
			loadGeo(b, ctx, rdb, key, c)
			q := &redis.GeoSearchQuery{Radius: benchRadius / 1000, RadiusUnit: "km", Sort: "ASC", Count: 5}
			benchQueries(b, c, func(p LatLng, dst []Candidate) []Candidate {
				q.Longitude, q.Latitude = p.Lng, p.Lat
				ids, err := rdb.GeoSearch(ctx, key, q).Result()
				if err != nil {
					b.Fatalf("GEOSEARCH: %v", err)
				}
				dst = dst[:0]
				for _, id := range ids {
					dst = append(dst, Candidate{ID: id})
				}
				return dst
			})
		})
	}
}

func loadGeo(b *testing.B, ctx context.Context, rdb *redis.Client, key string, c *benchCity) {
	b.Helper()
	pipe := rdb.Pipeline()
	for i, id := range c.ids {
		pipe.GeoAdd(ctx, key, &redis.GeoLocation{Name: id, Longitude: c.pos[i].Lng, Latitude: c.pos[i].Lat})
		if i%1000 == 999 || i == len(c.ids)-1 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatalf("GEOADD: %v", err)
			}
		}
	}
}

// benchQueries runs query over the city's pickups and reports queries/s and
// the latency percentiles from an HDR histogram of every query.
func benchQueries(b *testing.B, c *benchCity, query func(LatLng, []Candidate) []Candidate) {
	h := hdrhistogram.New(1, int64(10*time.Second), 3)
	dst := make([]Candidate, 0, 5)
	found := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := c.pickups[i&(len(c.pickups)-1)]
		t0 := time.Now()
		dst = query(p, dst)
		_ = h.RecordValue(int64(time.Since(t0)))
		found += len(dst)
	}
	b.StopTimer()
	if found == 0 {
		b.Fatal("no query found a driver")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
	b.ReportMetric(float64(h.ValueAtQuantile(50))/1e3, "p50-µs")
	b.ReportMetric(float64(h.ValueAtQuantile(99))/1e3, "p99-µs")
}

// BenchmarkNearestResolution is how the default resolution was chosen: the
// same nearest-5 question at neighbouring resolutions.
func BenchmarkNearestResolution(b *testing.B) {
	for _, n := range benchSizes {
		c := newBenchCity(n)
		for _, res := range []int{7, 8, 9} {
			b.Run(fmt.Sprintf("drivers=%d/res=%d", n, res), func(b *testing.B) {
				now := time.Now()
				ix := c.index(res, now)
				benchQueries(b, c, func(p LatLng, dst []Candidate) []Candidate {
					return ix.AppendNearest(dst, p, 5, benchRadius, time.Time{}, nil)
				})
			})
		}
	}
}
