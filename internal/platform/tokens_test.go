package platform

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hexride/hexride/gateway"
	"github.com/hexride/hexride/internal/conf"
)

// configFrom parses the settings as a standalone service (devAuth false)
// or the one-command run (true) would, from env.
func configFrom(t *testing.T, devAuth bool, env map[string]string) Config {
	t.Helper()
	var cfg Config
	s := conf.New("test", func(k string) string { return env[k] })
	cfg.Flags(s, "127.0.0.1:0", "", devAuth)
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func ecPublicKeyFile(t *testing.T) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwt.pub.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTokenSettings: at most one way of verifying tokens; exactly one for
// a standalone service; development auth (which mints HS256) only with a
// secret or none; and each error names what to set.
func TestTokenSettings(t *testing.T) {
	pub := ecPublicKeyFile(t)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	for _, c := range []struct {
		name    string
		devAuth bool
		env     map[string]string
		want    string // empty: valid
	}{
		{"dev, nothing set (a drawn secret)", true, nil, ""},
		{"dev, a secret", true, map[string]string{"HEXRIDE_JWT_SECRET": "s"}, ""},
		{"dev, a public key with dev auth", true, map[string]string{"HEXRIDE_JWT_PUBLIC_KEY_FILE": pub}, "HEXRIDE_DEV_AUTH mints HS256"},
		{"dev, a public key, dev auth off", true, map[string]string{"HEXRIDE_JWT_PUBLIC_KEY_FILE": pub, "HEXRIDE_DEV_AUTH": "false"}, ""},
		{"dev, secret and public key", true, map[string]string{"HEXRIDE_JWT_SECRET": "s", "HEXRIDE_JWT_PUBLIC_KEY_FILE": pub}, "HEXRIDE_JWT_SECRET and HEXRIDE_JWT_PUBLIC_KEY_FILE are all set"},
		{"prod, nothing", false, nil, "set exactly one of"},
		{"prod, a secret", false, map[string]string{"HEXRIDE_JWT_SECRET": "s"}, ""},
		{"prod, a public key", false, map[string]string{"HEXRIDE_JWT_PUBLIC_KEY_FILE": pub}, ""},
		{"prod, a JWKS", false, map[string]string{"HEXRIDE_JWT_JWKS_FILE": jwks}, ""},
		{"prod, public key and JWKS", false, map[string]string{"HEXRIDE_JWT_PUBLIC_KEY_FILE": pub, "HEXRIDE_JWT_JWKS_FILE": jwks}, "are all set"},
		{"prod, all three", false, map[string]string{"HEXRIDE_JWT_SECRET": "s", "HEXRIDE_JWT_PUBLIC_KEY_FILE": pub, "HEXRIDE_JWT_JWKS_FILE": jwks}, "are all set"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := configFrom(t, c.devAuth, c.env)
			err := cfg.Validate()
			if c.want == "" && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Validate: %v, want an error saying %q", err, c.want)
			}
		})
	}
}

// TestStandaloneServiceNeedsATokenSetting: a production service never draws
// a development secret of its own, even with development auth on: each
// replica would draw another.
func TestStandaloneServiceNeedsATokenSetting(t *testing.T) {
	env := map[string]string{"HEXRIDE_DEV_AUTH": "true", "KAFKA_BROKERS": "127.0.0.1:1", "REDIS_ADDR": "127.0.0.1:1"}
	err := Main(context.Background(), Service{Name: Gateway, DefaultAddr: "127.0.0.1:0"}, nil, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "standalone service needs a token setting") {
		t.Fatalf("Main: %v, want the token setting asked for", err)
	}
}

// TestPublicKeyAuthorityFromConfig: the configured key file is read, the
// authority verifies with it and mints nothing, and hexride token says why.
func TestPublicKeyAuthorityFromConfig(t *testing.T) {
	pub := ecPublicKeyFile(t)
	env := map[string]string{"HEXRIDE_JWT_PUBLIC_KEY_FILE": pub, "HEXRIDE_DEV_AUTH": "false"}
	cfg := configFrom(t, false, env)
	tokens, err := cfg.Tokens()
	if err != nil {
		t.Fatal(err)
	}
	if tokens.CanMint() {
		t.Fatal("a public-key authority can mint")
	}
	var out, errOut bytes.Buffer
	err = MintToken([]string{"-sub", "r-1"}, func(k string) string { return env[k] }, &out, &errOut)
	if !errors.Is(err, gateway.ErrCannotMint) {
		t.Fatalf("hexride token: %v, want ErrCannotMint", err)
	}
	cfg.JWTPublicKey = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := cfg.Tokens(); err == nil || !strings.Contains(err.Error(), "HEXRIDE_JWT_PUBLIC_KEY_FILE") {
		t.Fatalf("a missing key file: %v", err)
	}
}
