package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
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
	good, _ := tk.Mint("d-1", RoleDriver, time.Hour)
	expired, _ := tk.Mint("d-1", RoleDriver, -time.Minute)
	other, _ := mustTokens(t, "other").Mint("d-1", RoleDriver, time.Hour)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, Claims{Role: RoleDriver, RegisteredClaims: jwt.RegisteredClaims{
		Subject: "d-1", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Role: RoleDriver, RegisteredClaims: jwt.RegisteredClaims{Subject: "d-1"}})
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
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tk.Verify(tc.tok)
			if (err == nil) != tc.ok {
				t.Fatalf("Verify: %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (c.Subject != "d-1" || c.Role != RoleDriver) {
				t.Fatalf("claims %+v", c)
			}
		})
	}
}

func TestMintRejectsBadInput(t *testing.T) {
	tk := mustTokens(t, "s")
	for _, c := range []struct{ sub, role string }{{"", RoleRider}, {strings.Repeat("x", 65), RoleRider}, {"u", "pilot"}} {
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
	good, _ := tk.Mint("r-1", RoleRider, time.Hour)
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
