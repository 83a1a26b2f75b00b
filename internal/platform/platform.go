package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	kafkago "github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/hexride/hexride/dispatch"
	"github.com/hexride/hexride/events"
	"github.com/hexride/hexride/events/kafka"
	"github.com/hexride/hexride/gateway"
	"github.com/hexride/hexride/livemap"
	"github.com/hexride/hexride/supply"
	"github.com/hexride/hexride/trip"
	"github.com/hexride/hexride/web"
)

// Service names.
const (
	Gateway    = "gateway"
	Dispatcher = "dispatcher"
	Tripstate  = "tripstate"
)

// Options of a run beyond Config.
type Options struct {
	// Services to run; all three when empty.
	Services []string
	// Embedded allows an embedded broker and Redis when their addresses are
	// not configured (the one-process demo); otherwise they are required.
	Embedded bool
	// DevBroker starts the embedded broker (package devbroker), kept out
	// of the production binaries: only the one-command run and tests pass
	// it.
	DevBroker func(partitions int, retention time.Duration) (addrs []string, stop func(), err error)
	// DevRedis starts the embedded Redis (package devredis), likewise.
	DevRedis func(ctx context.Context) (addr string, stop func(), err error)
	// MetricsOnAddr serves /metrics on the main address too: the one-process
	// development run, on loopback, whose load tester reads it there. In
	// production /metrics and /debug/pprof/ are on AdminAddr only.
	MetricsOnAddr bool
	// OnListen is called with the HTTP address once it accepts connections.
	OnListen func(addr string)
	// Mount adds handlers to the gateway's mux, beside the live map's page.
	Mount map[string]http.Handler
	// MapCity is the street network the live map draws (the demo city's);
	// nil draws none.
	MapCity *web.City
	// OnReady is called with the running platform before Run blocks.
	OnReady func(*Running)
	// DemoCity, when the DemoCity setting is on, is run once listening and
	// until ctx ends: simulated phones that make the platform move.
	DemoCity func(ctx context.Context, addr string) error
}

// Running describes a started platform.
type Running struct {
	Addr string
	// AdminAddr serves /metrics and /debug/pprof/; empty when none is.
	AdminAddr string
	Brokers   []string
	Redis     redis.UniversalClient
	Tokens    *gateway.Tokens
	// DevAuth says whether POST /v1/dev/token mints tokens (the live map
	// page then gets its own viewer token).
	DevAuth bool
}

// NewLogger builds the structured logger for a level name.
func NewLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// Run starts the chosen services and blocks until ctx ends, then shuts down
// gracefully: HTTP first (no new commands), then the consumers, which commit
// what they handled.
func Run(ctx context.Context, cfg Config, log *slog.Logger, opt Options) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, s := range opt.Services {
		want[s] = true
	}
	if len(want) == 0 {
		want = map[string]bool{Gateway: true, Dispatcher: true, Tripstate: true}
	}

	brokers := kafka.ParseBrokers(cfg.KafkaBrokers)
	if len(brokers) == 0 {
		if !opt.Embedded || opt.DevBroker == nil {
			return errors.New("KAFKA_BROKERS is required")
		}
		addrs, stop, err := opt.DevBroker(cfg.KafkaPartitions, cfg.KafkaRetention)
		if err != nil {
			return err
		}
		defer stop()
		brokers = addrs
		log.Info("embedded Kafka-protocol broker (kfake) started", "brokers", brokers)
	}
	redisAddr := cfg.RedisAddr
	if redisAddr == "" {
		if !opt.Embedded {
			return errors.New("REDIS_ADDR is required")
		}
		if opt.DevRedis == nil {
			return errors.New("REDIS_ADDR is required")
		}
		addr, stop, err := opt.DevRedis(ctx)
		if err != nil {
			return err
		}
		defer stop()
		redisAddr = addr
		log.Info("embedded Redis-protocol server (miniredis) started", "addr", redisAddr)
	}

	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(startCtx, brokers, cfg.KafkaPartitions, events.Topics...); err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	if err := rdb.Ping(startCtx).Err(); err != nil {
		return fmt.Errorf("connect to redis at %s: %w", redisAddr, err)
	}
	producer := kafka.NewProducerWith(kafka.ProducerConfig{Brokers: brokers, Linger: cfg.KafkaLinger, PingLinger: cfg.KafkaPingLinger,
		Logger: log.With("producer", "events")})
	defer producer.Close()

	kafkaProbe := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 2 * time.Second}
	// checks are what /readyz asks beyond the dependencies: each service
	// adds its own before the listener starts.
	var checks []func(context.Context) error
	ready := func(ctx context.Context) error {
		for _, check := range checks {
			if err := check(ctx); err != nil {
				return err
			}
		}
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		// A round trip, not a dial: a paused broker still completes TCP
		// handshakes. Not Metadata either: kafka-go answers that from the
		// metadata it keeps.
		if _, err := kafkaProbe.ApiVersions(ctx, &kafkago.ApiVersionsRequest{}); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		return nil
	}

	tokens, err := cfg.Tokens()
	if err != nil {
		return err
	}
	store := trip.NewStore(rdb)
	avail := supply.Record{RDB: rdb}
	parts := Parts{Availability: avail}
	g, gctx := errgroup.WithContext(ctx)
	var handler http.Handler
	var gw *gateway.Server
	if want[Gateway] {
		agg, err := livemap.New(livemap.Config{StaleAfter: cfg.StaleAfter})
		if err != nil {
			return err
		}
		page, err := web.Routes(opt.MapCity)
		if err != nil {
			return err
		}
		hub := livemap.NewHub(agg, 0)
		limits := cfg.Limits
		limits.MaxSocketsPerUser, limits.MaxSocketsPerIP = cfg.MaxSocketsPerUser, cfg.MaxSocketsPerIP
		gw = gateway.New(gateway.Config{DevAuth: cfg.DevAuth, DevTokenTTL: cfg.JWTMaxTTL, MaxSpeedKMH: float64(cfg.MaxSpeedKMH), Ready: ready, LiveMap: hub,
			Limits: limits},
			tokens, producer, store, rdb, log.With("service", Gateway))
		parts.Gateway, parts.LiveMap = gw, hub
		for p, h := range page {
			gw.Handle(p, h)
		}
		for p, h := range opt.Mount {
			gw.Handle(p, h)
		}
		if opt.MetricsOnAddr {
			gw.Handle("GET /metrics", promhttp.Handler())
		}
		handler = gw.Handler()
		g.Go(func() error { return gw.RunPushes(gctx) })
		g.Go(func() error { return hub.RunTicker(gctx) })
	} else {
		handler = healthMux(ready, opt.MetricsOnAddr)
	}
	if want[Tripstate] {
		svc := trip.NewService(store, producer, log.With("service", Tripstate))
		svc.Deadline = cfg.SearchDeadline + cfg.OfferTimeout
		parts.Trips = svc
		g.Go(func() error { return svc.Run(gctx) })
	}
	if want[Dispatcher] {
		replica := cfg.ReplicaID
		if replica == "" {
			replica, _ = os.Hostname()
		}
		d := dispatch.New(dispatch.Config{OfferTimeout: cfg.OfferTimeout, SearchDeadline: cfg.SearchDeadline,
			StaleAfter: cfg.StaleAfter, MaxPickupM: float64(cfg.MaxPickupM), ReplicaID: replica,
			Policy: cfg.DispatchPolicy, BatchWindow: cfg.BatchWindow}, producer, log.With("service", Dispatcher), nil)
		d.Reservations = dispatch.RedisReservations{RDB: rdb, ClaimKey: trip.DriverClaimKey}
		d.Supply = avail
		parts.Dispatcher = d
		g.Go(func() error { return d.Run(gctx) })
		checks = append(checks, func(context.Context) error { return d.Ready() })
	}

	g.Go(func() error { return Serve(gctx, brokers, producer, log, parts) })

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	var adminAddr string
	var aln net.Listener
	if cfg.AdminAddr != "" {
		if aln, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			ln.Close()
			return fmt.Errorf("listen on HEXRIDE_ADMIN_ADDR %s: %w", cfg.AdminAddr, err)
		}
		adminAddr = aln.Addr().String()
		if ip := aln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
			log.Warn("the admin listener (metrics, pprof) is not on loopback: keep its port off the public network", "admin_addr", adminAddr)
		}
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	if aln != nil {
		admin := &http.Server{Handler: AdminMux(), ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			if err := admin.Serve(aln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve admin http: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			// A profile in flight is cut short: nothing here is a phone's.
			return admin.Close()
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 5*time.Second)
		defer cancel()
		// Requests in flight get two seconds. A connection that never sent
		// a request (a client's spare) keeps Shutdown waiting five by
		// net/http's rule, so Close then ends whatever is left.
		httpCtx, cancelHTTP := context.WithTimeout(shutCtx, 2*time.Second)
		defer cancelHTTP()
		if err := srv.Shutdown(httpCtx); err != nil {
			log.Warn("http connections still open at shutdown; closing them", "err", err)
			if err := srv.Close(); err != nil {
				return fmt.Errorf("close http server: %w", err)
			}
		}
		if gw != nil { // upgraded sockets are the gateway's, not the HTTP server's
			return gw.Close(shutCtx)
		}
		return nil
	})
	addr := ln.Addr().String()
	log.Info("listening", "addr", addr, "admin_addr", adminAddr, "services", opt.Services)
	if want[Gateway] {
		log.Info("live map", "url", "http://"+addr+"/")
	}
	if opt.OnListen != nil {
		opt.OnListen(addr)
	}
	if opt.OnReady != nil {
		opt.OnReady(&Running{Addr: addr, AdminAddr: adminAddr, Brokers: brokers, Redis: rdb, Tokens: tokens, DevAuth: cfg.DevAuth})
	}
	if cfg.DemoCity && opt.DemoCity != nil {
		g.Go(func() error {
			if err := opt.DemoCity(gctx, addr); err != nil && gctx.Err() == nil {
				log.Warn("demo city stopped", "err", err)
			}
			return nil
		})
	}
	return g.Wait()
}

func healthMux(ready func(context.Context) error, metrics bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if metrics {
		mux.Handle("GET /metrics", promhttp.Handler())
	}
	return mux
}

// AdminMux serves what operators read and phones must not: Prometheus
// metrics and the runtime profiles of net/http/pprof. It is registered on
// its own mux, never http.DefaultServeMux, so nothing leaks onto another
// listener.
func AdminMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
