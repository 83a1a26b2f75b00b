package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/hexride/hexride/internal/redistest"
	"github.com/hexride/hexride/protocol"
)

// testKeys are an RSA and an EC P-256 key pair, with a second pair of each
// that the gateway is never told of.
type testKeys struct {
	rsa, otherRSA *rsa.PrivateKey
	ec, otherEC   *ecdsa.PrivateKey
}

func newTestKeys(t testing.TB) testKeys {
	var k testKeys
	var err error
	for _, p := range []**rsa.PrivateKey{&k.rsa, &k.otherRSA} {
		if *p, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []**ecdsa.PrivateKey{&k.ec, &k.otherEC} {
		if *p, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// writePEM writes pub as a PKIX PEM file in a temporary directory.
func writePEM(t testing.TB, pub any) (path string, data []byte) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	data = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path = filepath.Join(t.TempDir(), "jwt.pub.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]string {
	raw, err := k.Bytes() // 0x04 || X || Y, 32 bytes each
	if err != nil {
		panic(err)
	}
	return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])}
}

func jwksJSON(t testing.TB, keys ...map[string]string) []byte {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign makes a driver token for d-1 with method, key and kid (none if
// empty), expiring in exp.
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, exp time.Duration) string {
	now := time.Now()
	tok := jwt.NewWithClaims(method, Claims{Role: protocol.RoleDriver, RegisteredClaims: jwt.RegisteredClaims{Subject: "d-1",
		IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)), ExpiresAt: jwt.NewNumericDate(now.Add(exp))}})
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// handshake dials the gateway's WebSocket with tok and returns the HTTP
// status of the handshake: 101 when it upgraded.
func handshake(t *testing.T, url, tok string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/v1/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	if err == nil {
		c.Close(websocket.StatusNormalClosure, "")
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

// TestPublicKeyTokensAtTheHandshake: with a public key (PEM) or a JWKS the
// gateway upgrades only tokens signed by the matching private key with that
// key's own algorithm; an HS256 token signed with the public key's bytes
// (algorithm confusion), alg none, an unknown kid and an expired token are
// refused with 401.
func TestPublicKeyTokensAtTheHandshake(t *testing.T) {
	k := newTestKeys(t)
	rsaPath, rsaPEM := writePEM(t, &k.rsa.PublicKey)
	ecPath, ecPEM := writePEM(t, &k.ec.PublicKey)
	jwks := jwksJSON(t, rsaJWK("r1", &k.rsa.PublicKey), ecJWK("e1", &k.ec.PublicKey))
	jwksPath := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksPath, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(path string, jwks bool) *Tokens {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var tk *Tokens
		if jwks {
			tk, err = NewTokensFromJWKS(b, TokenRules{})
		} else {
			tk, err = NewTokensFromPublicKeyPEM(b, TokenRules{})
		}
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", time.Hour)
	noneWithKid := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "r1", time.Hour)

	rdb := redistest.Start(t).Client(t)
	type tc struct {
		name, tok string
		status    int
	}
	for _, setup := range []struct {
		name   string
		tokens *Tokens
		cases  []tc
	}{
		{"RSA PEM", load(rsaPath, false), []tc{
			{"valid RS256", sign(t, jwt.SigningMethodRS256, k.rsa, "", time.Hour), 101},
			{"RS256 with any kid", sign(t, jwt.SigningMethodRS256, k.rsa, "whatever", time.Hour), 101},
			{"RS256 by another key", sign(t, jwt.SigningMethodRS256, k.otherRSA, "", time.Hour), 401},
			{"RS512 by the key", sign(t, jwt.SigningMethodRS512, k.rsa, "", time.Hour), 401},
			{"PS256 by the key", sign(t, jwt.SigningMethodPS256, k.rsa, "", time.Hour), 401},
			{"HS256 with the public key's PEM as secret", sign(t, jwt.SigningMethodHS256, rsaPEM, "", time.Hour), 401},
			{"alg none", noneTok, 401},
			{"expired", sign(t, jwt.SigningMethodRS256, k.rsa, "", -time.Minute), 401},
			{"ES256", sign(t, jwt.SigningMethodES256, k.ec, "", time.Hour), 401},
		}},
		{"EC PEM", load(ecPath, false), []tc{
			{"valid ES256", sign(t, jwt.SigningMethodES256, k.ec, "", time.Hour), 101},
			{"ES256 by another key", sign(t, jwt.SigningMethodES256, k.otherEC, "", time.Hour), 401},
			{"HS256 with the public key's PEM as secret", sign(t, jwt.SigningMethodHS256, ecPEM, "", time.Hour), 401},
			{"alg none", noneTok, 401},
			{"expired", sign(t, jwt.SigningMethodES256, k.ec, "", -time.Minute), 401},
			{"RS256", sign(t, jwt.SigningMethodRS256, k.rsa, "", time.Hour), 401},
		}},
		{"JWKS with two kids", load(jwksPath, true), []tc{
			{"valid RS256, kid r1", sign(t, jwt.SigningMethodRS256, k.rsa, "r1", time.Hour), 101},
			{"valid ES256, kid e1", sign(t, jwt.SigningMethodES256, k.ec, "e1", time.Hour), 101},
			{"unknown kid", sign(t, jwt.SigningMethodRS256, k.rsa, "r2", time.Hour), 401},
			{"no kid", sign(t, jwt.SigningMethodRS256, k.rsa, "", time.Hour), 401},
			{"RS256 by another key, kid r1", sign(t, jwt.SigningMethodRS256, k.otherRSA, "r1", time.Hour), 401},
			{"RS256 naming the EC key's kid", sign(t, jwt.SigningMethodRS256, k.rsa, "e1", time.Hour), 401},
			{"ES256 naming the RSA key's kid", sign(t, jwt.SigningMethodES256, k.ec, "r1", time.Hour), 401},
			{"HS256 with the JWKS as secret", sign(t, jwt.SigningMethodHS256, jwks, "r1", time.Hour), 401},
			{"HS256 with the RSA PEM as secret", sign(t, jwt.SigningMethodHS256, rsaPEM, "r1", time.Hour), 401},
			{"alg none", noneWithKid, 401},
			{"expired", sign(t, jwt.SigningMethodES256, k.ec, "e1", -time.Minute), 401},
		}},
	} {
		t.Run(setup.name, func(t *testing.T) {
			if setup.tokens.CanMint() {
				t.Fatal("a public-key authority says it can mint")
			}
			if _, err := setup.tokens.Mint("d-1", protocol.RoleDriver, time.Hour); !errors.Is(err, ErrCannotMint) {
				t.Fatalf("Mint: %v, want ErrCannotMint", err)
			}
			s := New(Config{}, setup.tokens, &published{}, noTrips{}, rdb, nil)
			hs := httptest.NewServer(s.Handler())
			t.Cleanup(hs.Close)
			t.Cleanup(func() { _ = s.Close(context.Background()) })
			for _, c := range setup.cases {
				t.Run(c.name, func(t *testing.T) {
					if got := handshake(t, hs.URL, c.tok); got != c.status {
						t.Fatalf("handshake answered %d, want %d", got, c.status)
					}
				})
			}
		})
	}
}

// TestKeyFilesRefused: keys hexride must not verify with are refused when
// the file is read, not at the first token.
func TestKeyFilesRefused(t *testing.T) {
	k := newTestKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, smallPEM := writePEM(t, &small.PublicKey)
	_, p384PEM := writePEM(t, &p384.PublicKey)
	for name, data := range map[string][]byte{"RSA 1024": smallPEM, "EC P-384": p384PEM, "not PEM": []byte("hello"),
		"a private key": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)})} {
		if _, err := NewTokensFromPublicKeyPEM(data, TokenRules{}); err == nil {
			t.Errorf("PEM %s accepted", name)
		}
	}
	offCurve := ecJWK("e1", &k.ec.PublicKey)
	offCurve["y"] = offCurve["x"]
	wrongAlg := rsaJWK("r1", &k.rsa.PublicKey)
	wrongAlg["alg"] = "HS256"
	for name, data := range map[string][]byte{
		"two keys with one kid":   jwksJSON(t, rsaJWK("k", &k.rsa.PublicKey), ecJWK("k", &k.ec.PublicKey)),
		"a point off the curve":   jwksJSON(t, offCurve),
		"alg HS256 on an RSA key": jwksJSON(t, wrongAlg),
		"RSA 1024":                jwksJSON(t, rsaJWK("r1", &small.PublicKey)),
		"no usable key":           jwksJSON(t, map[string]string{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}),
		"empty set":               []byte(`{"keys":[]}`),
		"not JSON":                []byte("keys"),
	} {
		if _, err := NewTokensFromJWKS(data, TokenRules{}); err == nil {
			t.Errorf("JWKS with %s accepted", name)
		}
	}
	// Keys of other types and encryption keys are skipped, not fatal.
	enc := ecJWK("e2", &k.otherEC.PublicKey)
	enc["use"] = "enc"
	tk, err := NewTokensFromJWKS(jwksJSON(t, map[string]string{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}, enc, ecJWK("e1", &k.ec.PublicKey)), TokenRules{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Verify(sign(t, jwt.SigningMethodES256, k.otherEC, "e2", time.Hour)); err == nil {
		t.Error("a token verified with an encryption key")
	}
	if _, err := tk.Verify(sign(t, jwt.SigningMethodES256, k.ec, "e1", time.Hour)); err != nil {
		t.Errorf("the signing key beside them: %v", err)
	}
}
