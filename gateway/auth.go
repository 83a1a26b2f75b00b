package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the token claims of protocol.md: sub, role, exp.
type Claims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// Tokens mints and verifies HS256 tokens with one shared secret.
type Tokens struct {
	secret []byte
}

// NewTokens returns a token authority; the secret must not be empty.
func NewTokens(secret string) (*Tokens, error) {
	if secret == "" {
		return nil, errors.New("empty JWT secret")
	}
	return &Tokens{secret: []byte(secret)}, nil
}

func validRole(r string) bool { return r == RoleDriver || r == RoleRider || r == RoleViewer }

// Mint signs a token for sub in role, valid for ttl.
func (t *Tokens) Mint(sub, role string, ttl time.Duration) (string, error) {
	if sub == "" || len(sub) > MaxIDBytes {
		return "", fmt.Errorf("sub must be 1 to %d bytes", MaxIDBytes)
	}
	if !validRole(role) {
		return "", fmt.Errorf("role must be driver, rider or viewer, not %q", role)
	}
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Role: role, RegisteredClaims: jwt.RegisteredClaims{
		Subject: sub, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}})
	s, err := tok.SignedString(t.secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// Verify checks signature, algorithm, expiry, subject and role.
func (t *Tokens) Verify(s string) (Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(s, &c, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		return Claims{}, fmt.Errorf("invalid token: %w", err)
	}
	if c.Subject == "" || len(c.Subject) > MaxIDBytes {
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
		writeJSON(w, http.StatusBadRequest, httpError{CodeBadRequest, "body must be {\"role\":...,\"sub\":...}: " + err.Error()})
		return
	}
	tok, err := s.tokens.Mint(req.Sub, req.Role, s.cfg.DevTokenTTL)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, httpError{CodeBadRequest, err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}
