package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/hexride/hexride/internal/redistest"
	"github.com/hexride/hexride/protocol"
)

func mustTokens(t testing.TB, secret string) *Tokens {
	tk, err := NewTokens(secret)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestVerify(t *testing.T) {
	tk := mustTokens(t, "s3cret")
	good, _ := tk.Mint("d-1", protocol.RoleDriver, time.Hour)
	now := time.Now()
	at := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(now.Add(d)) }
	signed := func(rc jwt.RegisteredClaims) string {
		rc.Subject = "d-1"
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Role: protocol.RoleDriver, RegisteredClaims: rc}).SignedString([]byte("s3cret"))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	expired := signed(jwt.RegisteredClaims{IssuedAt: at(-time.Hour), ExpiresAt: at(-time.Minute)})
	other, _ := mustTokens(t, "other").Mint("d-1", protocol.RoleDriver, time.Hour)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, Claims{Role: protocol.RoleDriver, RegisteredClaims: jwt.RegisteredClaims{
		Subject: "d-1", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Role: protocol.RoleDriver, RegisteredClaims: jwt.RegisteredClaims{Subject: "d-1"}})
	noExpTok, _ := noExp.SignedString([]byte("s3cret"))
	badRole := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Role: "admin", RegisteredClaims: jwt.RegisteredClaims{
		Subject: "d-1", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	badRoleTok, _ := badRole.SignedString([]byte("s3cret"))
	cases := []struct {
		name, tok string
		ok        bool
	}{
		{"valid", good, true},
		{"expired", expired, false},
		{"other secret", other, false},
		{"alg none", noneTok, false},
		{"no exp", noExpTok, false},
		{"unknown role", badRoleTok, false},
		{"empty", "", false},
		{"garbage", "a.b.c", false},
		{"issued a day from now", signed(jwt.RegisteredClaims{IssuedAt: at(24 * time.Hour), ExpiresAt: at(25 * time.Hour)}), false},
		{"issued within the leeway", signed(jwt.RegisteredClaims{IssuedAt: at(10 * time.Second), ExpiresAt: at(time.Hour)}), true},
		{"not valid before an hour from now", signed(jwt.RegisteredClaims{NotBefore: at(time.Hour), ExpiresAt: at(2 * time.Hour)}), false},
		{"lives a hundred years", signed(jwt.RegisteredClaims{IssuedAt: at(0), ExpiresAt: at(100 * 365 * 24 * time.Hour)}), false},
		{"no iat, expires in two days", signed(jwt.RegisteredClaims{ExpiresAt: at(48 * time.Hour)}), false},
		{"no iat, expires within the maximum", signed(jwt.RegisteredClaims{ExpiresAt: at(time.Hour)}), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tk.Verify(tc.tok)
			if (err == nil) != tc.ok {
				t.Fatalf("Verify: %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (c.Subject != "d-1" || c.Role != protocol.RoleDriver) {
				t.Fatalf("claims %+v", c)
			}
		})
	}
}

// TestIssuerAndAudience: with the rules naming them, a token must carry
// both; without, neither is asked for.
func TestIssuerAndAudience(t *testing.T) {
	strict, err := NewTokensWith("s3cret", TokenRules{Issuer: "https://id.example", Audience: "hexride"})
	if err != nil {
		t.Fatal(err)
	}
	lax := mustTokens(t, "s3cret")
	fromStrict, _ := strict.Mint("r-1", protocol.RoleRider, time.Hour)
	fromLax, _ := lax.Mint("r-1", protocol.RoleRider, time.Hour)
	for _, c := range []struct {
		name string
		tk   *Tokens
		tok  string
		ok   bool
	}{{"strict, with both", strict, fromStrict, true}, {"strict, with neither", strict, fromLax, false},
		{"lax, with both", lax, fromStrict, true}, {"lax, with neither", lax, fromLax, true}} {
		if _, err := c.tk.Verify(c.tok); (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.name, err, c.ok)
		}
	}
	if _, err := lax.Mint("r-1", protocol.RoleRider, 25*time.Hour); err == nil {
		t.Error("minted a token longer than the maximum")
	}
}

func TestMintRejectsBadInput(t *testing.T) {
	tk := mustTokens(t, "s")
	for _, c := range []struct{ sub, role string }{{"", protocol.RoleRider}, {strings.Repeat("x", 65), protocol.RoleRider}, {"u", "pilot"}} {
		if _, err := tk.Mint(c.sub, c.role, time.Hour); err == nil {
			t.Errorf("Mint(%q, %q) succeeded", c.sub, c.role)
		}
	}
	if _, err := NewTokens(""); err == nil {
		t.Error("an empty secret was accepted")
	}
}

func TestDevTokenEndpoint(t *testing.T) {
	s := &Server{cfg: Config{DevTokenTTL: time.Hour}, tokens: mustTokens(t, "s")}
	cases := []struct {
		method, body string
		status       int
	}{
		{"POST", `{"role":"driver","sub":"d-42"}`, 200},
		{"POST", `{"role":"pilot","sub":"d-42"}`, 400},
		{"POST", `{"role":"driver"}`, 400},
		{"POST", `{"role":"driver","sub":"d","admin":true}`, 400},
		{"POST", `not json`, 400},
		{"GET", ``, 405},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		s.devTokenHandler(rec, httptest.NewRequest(c.method, "/v1/dev/token", strings.NewReader(c.body)))
		if rec.Code != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.body, rec.Code, rec.Body, c.status)
		}
		if c.status == http.StatusOK && !strings.Contains(rec.Body.String(), `"token":"`) {
			t.Errorf("no token in %s", rec.Body)
		}
	}
}

// FuzzVerify: no input panics, and nothing but a token we minted verifies.
func FuzzVerify(f *testing.F) {
	tk := mustTokens(f, "fuzz-secret")
	good, _ := tk.Mint("r-1", protocol.RoleRider, time.Hour)
	for _, s := range []string{good, "", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", good + "x", strings.ToUpper(good)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := tk.Verify(s)
		if err == nil && (s != good || c.Subject != "r-1") {
			t.Fatalf("Verify accepted %q as %+v", s, c)
		}
	})
}

// TestSocketClosedWhenItsTokenExpires: a socket does not outlive its token
// by more than the grace; it is closed with protocol.CloseTokenExpired and a reason
// the phone can act on, for phones and live-map viewers alike.
func TestSocketClosedWhenItsTokenExpires(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	tokens := mustTokens(t, "expiry-test-secret")
	s := New(Config{TokenGrace: 200 * time.Millisecond}, tokens, &published{}, noTrips{}, rdb, nil)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	for _, role := range []string{protocol.RoleDriver, protocol.RoleViewer} {
		t.Run(role, func(t *testing.T) {
			tok, err := tokens.Mint("u-"+role, role, 1500*time.Millisecond) // exp has a second's resolution
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/v1/ws?token="+tok, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 22)
			start := time.Now()
			for {
				_, _, err = c.Read(ctx)
				if err != nil {
					break
				}
			}
			if got := websocket.CloseStatus(err); got != protocol.CloseTokenExpired {
				t.Fatalf("socket ended with %v (status %d), want %d", err, got, protocol.CloseTokenExpired)
			}
			if took := time.Since(start); took > 4*time.Second {
				t.Fatalf("closed %s after the dial, want about the token's life plus the grace", took)
			}
		})
	}
}
