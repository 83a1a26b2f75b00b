// Package platform assembles hexride's services from configuration: each
// service alone (for cmd/gateway, cmd/dispatcher, cmd/tripstate) or all of
// them in one process with an embedded broker and Redis (cmd/hexride). It is
// wiring only; what the services do lives in their own packages.
package platform

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hexride/hexride/dispatch"
	"github.com/hexride/hexride/gateway"
	"github.com/hexride/hexride/internal/conf"
)

// demoMaxSpeedKMH is HEXRIDE_MAX_SPEED_KMH's default in the one-command run,
// whose load tester drives 20 to 30 times faster than cars.
const demoMaxSpeedKMH = 2000

// Config is every setting of every service.
type Config struct {
	Addr            string
	AdminAddr       string
	KafkaBrokers    string
	KafkaPartitions int
	KafkaLinger     time.Duration
	KafkaPingLinger time.Duration
	KafkaRetention  time.Duration
	RedisAddr       string
	OfferTimeout    time.Duration
	SearchDeadline  time.Duration
	StaleAfter      time.Duration
	MaxPickupM      int
	DispatchPolicy  string
	BatchWindow     time.Duration
	JWTSecret       string
	JWTPublicKey    string // file
	JWTJWKS         string // file
	JWTMaxTTL       time.Duration
	JWTIssuer       string
	JWTAudience     string
	DevSecretFile   string
	MaxSpeedKMH     int
	// MaxSocketsPerUser and MaxSocketsPerIP are the gateway's socket
	// limits (HEXRIDE_MAX_SOCKETS_PER_USER, HEXRIDE_MAX_SOCKETS_PER_IP);
	// 0 takes the gateway's default for the first and turns the second off.
	MaxSocketsPerUser int
	MaxSocketsPerIP   int
	// Limits, if set in code (tests, embedding), are the gateway's other
	// limits: per-user budgets and back-off (gateway.Limits; zero values
	// take its defaults). The two settings above override its socket limits.
	Limits    gateway.Limits
	DevAuth   bool
	LogLevel  string
	ReplicaID string
	DemoCity  bool
}

// Flags registers every setting on s. defAddr, defAdminAddr and devAuth
// differ between the one-process demo and the standalone services.
func (c *Config) Flags(s *conf.Set, defAddr, defAdminAddr string, devAuth bool) {
	addrUse := "HTTP listen address for phones and probes (WebSocket, live map, /healthz, /readyz)"
	adminUse := "admin HTTP listen address (/metrics, /debug/pprof/), never the phones' one: keep it private (loopback or an internal network)"
	if devAuth {
		addrUse = "HTTP listen address (WebSocket, live map, /healthz, /readyz and, in this development run, /metrics)"
		adminUse += "; empty serves none (this development run has /metrics on its main address)"
	}
	s.String(&c.Addr, "addr", "HEXRIDE_ADDR", defAddr, addrUse)
	s.String(&c.AdminAddr, "admin-addr", "HEXRIDE_ADMIN_ADDR", defAdminAddr, adminUse)
	s.String(&c.KafkaBrokers, "kafka-brokers", "KAFKA_BROKERS", "", "comma-separated Kafka brokers; empty runs an embedded broker (hexride only)")
	s.Int(&c.KafkaPartitions, "kafka-partitions", "KAFKA_PARTITIONS", 4, "partitions of each topic hexride creates: the most replicas of one service that share its work")
	s.Duration(&c.KafkaLinger, "kafka-linger", "KAFKA_LINGER", 0, "how long a batch of trip commands, trip events or pushes waits for company before it is sent; 0 sends at once")
	s.Duration(&c.KafkaPingLinger, "kafka-ping-linger", "KAFKA_PING_LINGER", 50*time.Millisecond, "the same for driver location and availability events")
	s.Duration(&c.KafkaRetention, "kafka-retention", "KAFKA_RETENTION", 30*time.Minute, "how long the embedded broker keeps events (it holds them in memory); 0 keeps all (hexride only)")
	s.String(&c.RedisAddr, "redis-addr", "REDIS_ADDR", "", "Redis host:port; empty runs an embedded Redis-protocol server (hexride only)")
	s.Duration(&c.OfferTimeout, "offer-timeout", "HEXRIDE_OFFER_TIMEOUT", 10*time.Second, "how long a driver has to answer an offer")
	s.Duration(&c.SearchDeadline, "search-deadline", "HEXRIDE_SEARCH_DEADLINE", 60*time.Second, "how long a request searches before NO_DRIVERS")
	s.Duration(&c.StaleAfter, "driver-stale-after", "HEXRIDE_DRIVER_STALE_AFTER", 15*time.Second, "a driver not heard from for this long is never offered")
	s.Int(&c.MaxPickupM, "max-pickup-m", "HEXRIDE_MAX_PICKUP_M", 5000, "farthest a driver may be from the pickup, in metres")
	s.String(&c.DispatchPolicy, "dispatch-policy", "HEXRIDE_DISPATCH_POLICY", "greedy", "greedy (offer each request at once) or batch (assign a window of requests at least total pickup time)")
	s.Duration(&c.BatchWindow, "batch-window", "HEXRIDE_BATCH_WINDOW", 2*time.Second, "how long the batch policy collects requests")
	s.String(&c.JWTSecret, "jwt-secret", "HEXRIDE_JWT_SECRET", "", "HS256 secret for tokens; exactly one of it, -jwt-public-key-file and -jwt-jwks-file is required unless development auth is on")
	s.String(&c.JWTPublicKey, "jwt-public-key-file", "HEXRIDE_JWT_PUBLIC_KEY_FILE", "", "PEM file of the RSA (RS256) or EC P-256 (ES256) public key tokens are verified with; hexride then mints none")
	s.String(&c.JWTJWKS, "jwt-jwks-file", "HEXRIDE_JWT_JWKS_FILE", "", "JSON Web Key Set file (RSA and EC P-256 keys) tokens are verified with, each by its kid; hexride then mints none")
	s.Duration(&c.JWTMaxTTL, "jwt-max-ttl", "HEXRIDE_JWT_MAX_TTL", gateway.DefaultTokenMaxTTL, "longest a token may live, from iat to exp; a socket is closed when its token expires")
	s.String(&c.JWTIssuer, "jwt-issuer", "HEXRIDE_JWT_ISSUER", "", "if set, tokens must carry this iss")
	s.String(&c.JWTAudience, "jwt-audience", "HEXRIDE_JWT_AUDIENCE", "", "if set, tokens must carry this aud")
	// The one-command run's default lets the load tester's drivers through:
	// they drive -speedup times faster than cars (20: about 1,100 km/h).
	maxSpeed := gateway.DefaultMaxSpeedKMH
	if devAuth {
		maxSpeed = demoMaxSpeedKMH
	}
	s.Int(&c.MaxSpeedKMH, "max-speed-kmh", "HEXRIDE_MAX_SPEED_KMH", maxSpeed, "fastest a driver's successive locations may imply; faster ones are refused (bad_request) and never published")
	// Loopback load tests hold thousands of sockets from one address: the
	// one-command run has no per-IP limit unless asked.
	perIP := gateway.DefaultMaxSocketsPerIP
	if devAuth {
		perIP = 0
	}
	s.Int(&c.MaxSocketsPerUser, "max-sockets-per-user", "HEXRIDE_MAX_SOCKETS_PER_USER", gateway.DefaultMaxSocketsPerUser,
		"most sockets one user (role and sub) may hold at once across every gateway; a newer one closes the oldest (4008)")
	s.Int(&c.MaxSocketsPerIP, "max-sockets-per-ip", "HEXRIDE_MAX_SOCKETS_PER_IP", perIP,
		"most phone sockets one remote IP may hold on a gateway (HTTP 429 beyond); 0 turns it and the per-IP back-off off")
	s.String(&c.DevSecretFile, "dev-secret-file", "HEXRIDE_DEV_SECRET_FILE", "", "where development auth keeps the secret it draws on every start, for hexride token; empty: hexride/dev-secret in the user's cache directory")
	s.Bool(&c.DevAuth, "dev-auth", "HEXRIDE_DEV_AUTH", devAuth, "serve POST /v1/dev/token, minting a token for anyone")
	s.String(&c.LogLevel, "log-level", "HEXRIDE_LOG_LEVEL", "info", "debug, info, warn or error")
	s.Bool(&c.DemoCity, "demo-city", "HEXRIDE_DEMO_CITY", devAuth, "run a small simulated city of phones against this platform (hexride only)")
	s.String(&c.ReplicaID, "replica-id", "HEXRIDE_REPLICA_ID", "", "name of this dispatcher replica in its logs; empty uses the host name")
}

// Validate reports the first bad setting, naming its env var.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("HEXRIDE_ADDR=%q: want host:port: %w", c.Addr, err)
	}
	if c.AdminAddr != "" {
		_, port, err := net.SplitHostPort(c.AdminAddr)
		if err != nil {
			return fmt.Errorf("HEXRIDE_ADMIN_ADDR=%q: want host:port: %w", c.AdminAddr, err)
		}
		if _, mainPort, _ := net.SplitHostPort(c.Addr); port != "0" && port == mainPort {
			return fmt.Errorf("HEXRIDE_ADMIN_ADDR=%q: the same port as HEXRIDE_ADDR=%q; the admin listener must be another, private one", c.AdminAddr, c.Addr)
		}
	}
	switch {
	case c.KafkaPartitions < 1 || c.KafkaPartitions > 1024:
		return fmt.Errorf("KAFKA_PARTITIONS=%d: want 1 to 1024", c.KafkaPartitions)
	case c.KafkaLinger < 0 || c.KafkaLinger > time.Second:
		return fmt.Errorf("KAFKA_LINGER=%s: want 0 (send at once) to 1s", c.KafkaLinger)
	case c.KafkaPingLinger < 0 || c.KafkaPingLinger > time.Second:
		return fmt.Errorf("KAFKA_PING_LINGER=%s: want 0 (send at once) to 1s", c.KafkaPingLinger)
	case c.KafkaRetention != 0 && c.KafkaRetention < time.Minute:
		return fmt.Errorf("KAFKA_RETENTION=%s: want 0 (keep all) or at least 1m, longer than any consumer may lag", c.KafkaRetention)
	case c.OfferTimeout < 100*time.Millisecond:
		return fmt.Errorf("HEXRIDE_OFFER_TIMEOUT=%s: want at least 100ms", c.OfferTimeout)
	case c.SearchDeadline < c.OfferTimeout:
		return fmt.Errorf("HEXRIDE_SEARCH_DEADLINE=%s: want at least the offer timeout (%s)", c.SearchDeadline, c.OfferTimeout)
	case c.StaleAfter < time.Second:
		return fmt.Errorf("HEXRIDE_DRIVER_STALE_AFTER=%s: want at least 1s", c.StaleAfter)
	case c.MaxPickupM < 100 || c.MaxPickupM > 100_000:
		return fmt.Errorf("HEXRIDE_MAX_PICKUP_M=%d: want 100 to 100000", c.MaxPickupM)
	case c.DispatchPolicy == dispatch.PolicyBatch && (c.BatchWindow < 100*time.Millisecond || c.BatchWindow > c.OfferTimeout):
		return fmt.Errorf("HEXRIDE_BATCH_WINDOW=%s: want 100ms to the offer timeout (%s)", c.BatchWindow, c.OfferTimeout)
	case c.MaxSpeedKMH < 0 || c.MaxSpeedKMH > 100_000:
		return fmt.Errorf("HEXRIDE_MAX_SPEED_KMH=%d: want 1 to 100000 (0 takes the gateway's default, %d)", c.MaxSpeedKMH, gateway.DefaultMaxSpeedKMH)
	case c.MaxSocketsPerUser < 0 || c.MaxSocketsPerUser > 1000:
		return fmt.Errorf("HEXRIDE_MAX_SOCKETS_PER_USER=%d: want 1 to 1000 (0 takes the default, %d)", c.MaxSocketsPerUser, gateway.DefaultMaxSocketsPerUser)
	case c.MaxSocketsPerIP < 0:
		return fmt.Errorf("HEXRIDE_MAX_SOCKETS_PER_IP=%d: want 0 (no limit) or more", c.MaxSocketsPerIP)
	case c.JWTMaxTTL < 0 || c.JWTMaxTTL > 30*24*time.Hour:
		return fmt.Errorf("HEXRIDE_JWT_MAX_TTL=%s: want up to 720h (0 takes the default, %s)", c.JWTMaxTTL, gateway.DefaultTokenMaxTTL)
	}
	if err := c.validateTokenSource(false); err != nil {
		return err
	}
	// Empty means the dispatcher's default (greedy), for configs built in code.
	if c.DispatchPolicy != "" {
		if err := dispatch.ValidatePolicy(c.DispatchPolicy); err != nil {
			return fmt.Errorf("HEXRIDE_DISPATCH_POLICY: %w", err)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("HEXRIDE_LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// tokenSources names the token settings that are set.
func (c *Config) tokenSources() []string {
	var set []string
	for _, s := range []struct{ env, v string }{{"HEXRIDE_JWT_SECRET", c.JWTSecret},
		{"HEXRIDE_JWT_PUBLIC_KEY_FILE", c.JWTPublicKey}, {"HEXRIDE_JWT_JWKS_FILE", c.JWTJWKS}} {
		if s.v != "" {
			set = append(set, s.env)
		}
	}
	return set
}

// tokenSourceHelp says which token settings there are.
const tokenSourceHelp = "set exactly one of HEXRIDE_JWT_SECRET (HS256), HEXRIDE_JWT_PUBLIC_KEY_FILE (RS256 or ES256, a PEM public key) and HEXRIDE_JWT_JWKS_FILE (RS256 and ES256, a JSON Web Key Set)"

// validateTokenSource checks that at most one way of verifying tokens is
// set, and exactly one when production is true or development auth is
// off; and that development auth, which mints HS256 tokens, is not asked
// for with public keys.
func (c *Config) validateTokenSource(production bool) error {
	set := c.tokenSources()
	switch {
	case len(set) > 1:
		return fmt.Errorf("%s are all set: %s", strings.Join(set, " and "), tokenSourceHelp)
	case len(set) == 0 && production:
		return fmt.Errorf("a standalone service needs a token setting: %s", tokenSourceHelp)
	case len(set) == 0 && !c.DevAuth:
		return fmt.Errorf("a token setting is required when HEXRIDE_DEV_AUTH is off: %s", tokenSourceHelp)
	case len(set) == 1 && set[0] != "HEXRIDE_JWT_SECRET" && c.DevAuth:
		return fmt.Errorf("HEXRIDE_DEV_AUTH mints HS256 tokens, which %s cannot verify: set HEXRIDE_DEV_AUTH=false (tokens then come from the identity provider)", set[0])
	}
	return nil
}

// Tokens builds the token authority: with the configured public key or
// JWKS file, with the configured secret, or, when
// development auth is on without one, a secret drawn now and kept in
// DevSecretFile for `hexride token` (the commands set it to the user's cache
// directory when it is empty; a Config built in code keeps no file).
func (c *Config) Tokens() (*gateway.Tokens, error) {
	switch {
	case c.JWTPublicKey != "":
		b, err := os.ReadFile(c.JWTPublicKey)
		if err != nil {
			return nil, fmt.Errorf("HEXRIDE_JWT_PUBLIC_KEY_FILE: %w", err)
		}
		t, err := gateway.NewTokensFromPublicKeyPEM(b, c.tokenRules())
		if err != nil {
			return nil, fmt.Errorf("HEXRIDE_JWT_PUBLIC_KEY_FILE=%s: %w", c.JWTPublicKey, err)
		}
		return t, nil
	case c.JWTJWKS != "":
		b, err := os.ReadFile(c.JWTJWKS)
		if err != nil {
			return nil, fmt.Errorf("HEXRIDE_JWT_JWKS_FILE: %w", err)
		}
		t, err := gateway.NewTokensFromJWKS(b, c.tokenRules())
		if err != nil {
			return nil, fmt.Errorf("HEXRIDE_JWT_JWKS_FILE=%s: %w", c.JWTJWKS, err)
		}
		return t, nil
	}
	secret := c.JWTSecret
	if secret == "" && c.DevAuth {
		var err error
		if secret, err = newDevSecret(c.DevSecretFile); err != nil {
			return nil, err
		}
	}
	return gateway.NewTokensWith(secret, c.tokenRules())
}

func (c *Config) tokenRules() gateway.TokenRules {
	return gateway.TokenRules{MaxTTL: c.JWTMaxTTL, Issuer: c.JWTIssuer, Audience: c.JWTAudience}
}
