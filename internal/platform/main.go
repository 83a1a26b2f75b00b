package platform

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/hexride/hexride/gateway"
	"github.com/hexride/hexride/internal/conf"
)

// Service describes one standalone service command.
type Service struct {
	Name        string
	DefaultAddr string
	// DefaultAdminAddr is where /metrics and /debug/pprof/ are served
	// unless HEXRIDE_ADMIN_ADDR says otherwise: a loopback port of its own.
	DefaultAdminAddr string
}

// Main parses args and the environment for one standalone service and runs
// it until ctx ends. Standalone services need a real broker and Redis, and
// have development auth off unless asked.
func Main(ctx context.Context, svc Service, args []string, getenv func(string) string, stderr io.Writer) error {
	var cfg Config
	s := conf.New(svc.Name, getenv)
	s.FS.SetOutput(stderr)
	cfg.Flags(s, svc.DefaultAddr, svc.DefaultAdminAddr, false)
	if err := s.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	// Production never draws a secret of its own: each replica would draw
	// another, and none would accept the others' tokens.
	if err := cfg.validateTokenSource(true); err != nil {
		return err
	}
	cfg.DevSecretFile = cmp.Or(cfg.DevSecretFile, defaultDevSecretFile())
	return Run(ctx, cfg, NewLogger(cfg.LogLevel).With("service", svc.Name), Options{Services: []string{svc.Name}})
}

// Demo parses args for the one-process run (embedded broker and Redis unless
// configured, development auth on) and runs every service until ctx ends.
// banner receives the address once listening, to tell the user what to open.
func Demo(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, opt Options) error {
	var cfg Config
	s := conf.New("hexride", getenv)
	s.FS.SetOutput(stderr)
	cfg.Flags(s, "127.0.0.1:8080", "", true)
	if err := s.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if s.FS.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: the commands are token, loadtest, history, replay and broker, and every setting is a flag (see -h)", s.FS.Arg(0))
	}
	opt.Embedded = true
	opt.MetricsOnAddr = true
	cfg.DevSecretFile = cmp.Or(cfg.DevSecretFile, defaultDevSecretFile())
	return Run(ctx, cfg, NewLogger(cfg.LogLevel), opt)
}

// Settings lists every setting with its env var, for documentation checks.
func Settings() []conf.Setting {
	var cfg Config
	s := conf.New("hexride", func(string) string { return "" })
	cfg.Flags(s, "127.0.0.1:8080", "", true)
	return s.Settings
}

// MintToken implements `hexride token`: it prints a token signed with
// HEXRIDE_JWT_SECRET, or else with the development secret the running
// platform drew at its start (HEXRIDE_DEV_SECRET_FILE). With a public key
// or JWKS configured it refuses: those tokens are the identity provider's.
func MintToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hexride token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	role := fs.String("role", "rider", "driver, rider or viewer")
	sub := fs.String("sub", "", "user id (required)")
	ttl := fs.Duration("ttl", gateway.DefaultTokenMaxTTL, "token lifetime (at most HEXRIDE_JWT_MAX_TTL)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var cfg Config
	s := conf.New("hexride", getenv)
	cfg.Flags(s, "127.0.0.1:8080", "", true)
	if err := s.Parse(nil); err != nil {
		return err
	}
	if err := cfg.validateTokenSource(false); err != nil && len(cfg.tokenSources()) > 1 {
		return err
	}
	if cfg.JWTPublicKey != "" || cfg.JWTJWKS != "" {
		return fmt.Errorf("mint token: %w", gateway.ErrCannotMint)
	}
	secret := cfg.JWTSecret
	if secret == "" {
		var err error
		if secret, err = readDevSecret(cmp.Or(cfg.DevSecretFile, defaultDevSecretFile())); err != nil {
			return err
		}
	}
	tokens, err := gateway.NewTokensWith(secret, cfg.tokenRules())
	if err != nil {
		return err
	}
	tok, err := tokens.Mint(*sub, *role, *ttl)
	if err != nil {
		return fmt.Errorf("mint token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
