package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/hexride/hexride/protocol"
)

// Claims are the token claims of protocol.md: sub, role, exp.
type Claims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// Tokens verifies tokens: HS256 with one shared secret (which also mints
// them), or RS256 / ES256 with public keys, one from a PEM file or several
// by kid from a JSON Web Key Set, whose private halves are the identity
// provider's. The algorithm is pinned by the configuration, never taken
// from the token.
type Tokens struct {
	secret []byte
	// single is the one public key of a PEM file; keys, by kid, those of a
	// JWKS. With either, nothing is minted.
	single *verifyKey
	keys   map[string]verifyKey
	rules  TokenRules
}

// ErrCannotMint is Mint's answer when tokens are verified with public keys:
// their private keys are the identity provider's.
var ErrCannotMint = errors.New("tokens are verified with a public key (HEXRIDE_JWT_PUBLIC_KEY_FILE or HEXRIDE_JWT_JWKS_FILE): " +
	"hexride cannot mint them; get one from the identity provider that holds the private key, or use HEXRIDE_JWT_SECRET (HS256) for development")

// TokenRules are what a token must satisfy beyond its signature: a token
// that lives for a hundred years, or was issued a day from now, is refused
// even if it is signed.
type TokenRules struct {
	// MaxTTL is the longest a token may live, from its iat (or from now,
	// without one) to its exp (24 h).
	MaxTTL time.Duration
	// Leeway is how far clocks may disagree for exp, nbf and iat (30 s).
	Leeway time.Duration
	// Issuer and Audience, if set, must match iss and be in aud.
	Issuer, Audience string
}

// Default token rules.
const (
	DefaultTokenMaxTTL = 24 * time.Hour
	DefaultTokenLeeway = 30 * time.Second
)

func (r TokenRules) withDefaults() TokenRules {
	if r.MaxTTL <= 0 {
		r.MaxTTL = DefaultTokenMaxTTL
	}
	if r.Leeway <= 0 {
		r.Leeway = DefaultTokenLeeway
	}
	return r
}

// NewTokens returns a token authority with the default rules; the secret
// must not be empty.
func NewTokens(secret string) (*Tokens, error) { return NewTokensWith(secret, TokenRules{}) }

// NewTokensWith returns a token authority with rules.
func NewTokensWith(secret string, rules TokenRules) (*Tokens, error) {
	if secret == "" {
		return nil, errors.New("empty JWT secret")
	}
	return &Tokens{secret: []byte(secret), rules: rules.withDefaults()}, nil
}

// NewTokensFromPublicKeyPEM returns an authority that verifies RS256
// tokens with an RSA public key (at least 2048 bits) or ES256 tokens with an
// EC P-256 one, given in PEM; it mints nothing.
func NewTokensFromPublicKeyPEM(pemData []byte, rules TokenRules) (*Tokens, error) {
	k, err := parsePublicKeyPEM(pemData)
	if err != nil {
		return nil, err
	}
	return &Tokens{single: &k, rules: rules.withDefaults()}, nil
}

// NewTokensFromJWKS returns an authority that verifies each token with the
// key of a JSON Web Key Set (RFC 7517) named by its kid header: RS256 for
// an RSA key, ES256 for an EC P-256 key. It mints nothing.
func NewTokensFromJWKS(jwksData []byte, rules TokenRules) (*Tokens, error) {
	keys, err := parseJWKS(jwksData)
	if err != nil {
		return nil, err
	}
	return &Tokens{keys: keys, rules: rules.withDefaults()}, nil
}

// CanMint says whether Mint can sign tokens (HS256 with a secret only).
func (t *Tokens) CanMint() bool { return t.secret != nil }

// methods are the algorithms a token may name, and key finds the key that
// verifies one, checking that its algorithm is the key's own.
func (t *Tokens) methods() []string {
	switch {
	case t.single != nil:
		return []string{t.single.alg}
	case t.keys != nil:
		return []string{"RS256", "ES256"}
	}
	return []string{"HS256"}
}

func (t *Tokens) key(tok *jwt.Token) (any, error) {
	var k verifyKey
	switch {
	case t.single != nil:
		k = *t.single
	case t.keys != nil:
		kid, _ := tok.Header["kid"].(string)
		var ok bool
		if k, ok = t.keys[kid]; !ok {
			return nil, fmt.Errorf("no key with kid %q", kid)
		}
	default:
		if tok.Method.Alg() != "HS256" {
			return nil, fmt.Errorf("alg %s, want HS256", tok.Method.Alg())
		}
		return t.secret, nil
	}
	if tok.Method.Alg() != k.alg {
		return nil, fmt.Errorf("alg %s with a key for %s", tok.Method.Alg(), k.alg)
	}
	return k.key, nil
}

func validRole(r string) bool {
	return r == protocol.RoleDriver || r == protocol.RoleRider || r == protocol.RoleViewer
}

// Mint signs a token for sub in role, valid for ttl.
func (t *Tokens) Mint(sub, role string, ttl time.Duration) (string, error) {
	if !t.CanMint() {
		return "", ErrCannotMint
	}
	if sub == "" || len(sub) > protocol.MaxIDBytes {
		return "", fmt.Errorf("sub must be 1 to %d bytes", protocol.MaxIDBytes)
	}
	if !validRole(role) {
		return "", fmt.Errorf("role must be driver, rider or viewer, not %q", role)
	}
	if ttl > t.rules.MaxTTL {
		return "", fmt.Errorf("a token lives at most %s, not %s", t.rules.MaxTTL, ttl)
	}
	now := time.Now()
	rc := jwt.RegisteredClaims{Subject: sub, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		Issuer: t.rules.Issuer}
	if t.rules.Audience != "" {
		rc.Audience = jwt.ClaimStrings{t.rules.Audience}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Role: role, RegisteredClaims: rc})
	s, err := tok.SignedString(t.secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// Verify checks signature and algorithm (HS256 with a secret; RS256 or
// ES256, the key's own, with public keys), exp (required),
// nbf and iat (not in the future beyond the leeway), the lifetime (at most
// MaxTTL), iss and aud when the rules name them, subject and role.
func (t *Tokens) Verify(s string) (Claims, error) {
	var c Claims
	opts := []jwt.ParserOption{jwt.WithValidMethods(t.methods()), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(t.rules.Leeway)}
	if t.rules.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(t.rules.Issuer))
	}
	if t.rules.Audience != "" {
		opts = append(opts, jwt.WithAudience(t.rules.Audience))
	}
	_, err := jwt.ParseWithClaims(s, &c, t.key, opts...)
	if err != nil {
		return Claims{}, fmt.Errorf("invalid token: %w", err)
	}
	from := time.Now()
	if c.IssuedAt != nil {
		from = c.IssuedAt.Time
	}
	if life := c.ExpiresAt.Sub(from); life > t.rules.MaxTTL+t.rules.Leeway {
		return Claims{}, fmt.Errorf("invalid token: it lives %s, longer than the %s allowed", life.Round(time.Second), t.rules.MaxTTL)
	}
	if c.Subject == "" || len(c.Subject) > protocol.MaxIDBytes {
		return Claims{}, errors.New("invalid token: sub must be 1 to 64 bytes")
	}
	if !validRole(c.Role) {
		return Claims{}, fmt.Errorf("invalid token: unknown role %q", c.Role)
	}
	return c, nil
}

// tokenFrom reads the bearer token from the Authorization header or, for
// browsers that cannot set headers on a WebSocket, the token query parameter.
func tokenFrom(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return r.URL.Query().Get("token")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type httpError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// devTokenHandler serves POST /v1/dev/token {"role":"driver","sub":"d-42"}.
func (s *Server) devTokenHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, httpError{"method_not_allowed", "use POST"})
		return
	}
	var req struct {
		Role string `json:"role"`
		Sub  string `json:"sub"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, httpError{protocol.CodeBadRequest, "body must be {\"role\":...,\"sub\":...}: " + err.Error()})
		return
	}
	tok, err := s.tokens.Mint(req.Sub, req.Role, s.cfg.DevTokenTTL)
	if errors.Is(err, ErrCannotMint) {
		writeJSON(w, http.StatusNotImplemented, httpError{"cannot_mint", err.Error()})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, httpError{protocol.CodeBadRequest, err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

var tokensExpired = promauto.NewCounter(prometheus.CounterOpts{
	Name: "hexride_gateway_sockets_token_expired_total", Help: "Sockets closed because their token expired.",
})

// closeAtExpiry calls end once the token's exp plus the grace has passed;
// the returned stop cancels it when the socket ends first.
func closeAtExpiry(c Claims, grace time.Duration, end func()) (stop func() bool) {
	t := time.AfterFunc(time.Until(c.ExpiresAt.Time)+grace, func() {
		tokensExpired.Inc()
		end()
	})
	return t.Stop
}
