package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/golang-jwt/jwt/v5"
)

// Public keys for RS256 and ES256 tokens, from a PEM file or a JSON Web Key
// Set (RFC 7517). Each key pins its algorithm: an RSA key verifies RS256
// only, a P-256 key ES256 only, so a token can never choose how it is
// checked (an HS256 token "signed" with the public key's bytes, or one with
// alg none, is refused).

// minRSABits is the smallest RSA modulus accepted (NIST SP 800-131A).
const minRSABits = 2048

// verifyKey is one public key and the one algorithm it verifies.
type verifyKey struct {
	alg string // "RS256" or "ES256"
	key any    // *rsa.PublicKey or *ecdsa.PublicKey
}

// keyFor checks a public key's type and strength and names its algorithm.
func keyFor(pub any) (verifyKey, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return verifyKey{}, fmt.Errorf("RSA key of %d bits: want at least %d", k.N.BitLen(), minRSABits)
		}
		return verifyKey{alg: "RS256", key: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return verifyKey{}, fmt.Errorf("EC key on %s: only P-256 (ES256) is accepted", k.Curve.Params().Name)
		}
		return verifyKey{alg: "ES256", key: k}, nil
	}
	return verifyKey{}, fmt.Errorf("a %T key: want RSA (RS256) or EC P-256 (ES256)", pub)
}

// parsePublicKeyPEM reads one RSA or EC P-256 public key (PKIX "PUBLIC
// KEY", PKCS #1 "RSA PUBLIC KEY", or a certificate).
func parsePublicKeyPEM(b []byte) (verifyKey, error) {
	if k, err := jwt.ParseRSAPublicKeyFromPEM(b); err == nil {
		return keyFor(k)
	}
	k, err := jwt.ParseECPublicKeyFromPEM(b)
	if err != nil {
		return verifyKey{}, errors.New("no RSA or EC public key in the PEM data")
	}
	return keyFor(k)
}

// jwk is the part of a JSON Web Key (RFC 7517, 7518) that hexride reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads a JSON Web Key Set into keys by kid. Keys of other types
// or curves, and keys for encryption (use "enc"), are skipped, as RFC 7517
// asks; a set with no usable key, a malformed key, a key whose alg is not
// its type's, or two keys with one kid is an error.
func parseJWKS(b []byte) (map[string]verifyKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	keys := map[string]verifyKey{}
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		var pub any
		switch {
		case k.Kty == "RSA":
			n, err1 := b64uint(k.N)
			e, err2 := b64uint(k.E)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("JWKS key %d (kid %q): %w", i, k.Kid, err)
			}
			if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
				return nil, fmt.Errorf("JWKS key %d (kid %q): bad RSA exponent", i, k.Kid)
			}
			pub = &rsa.PublicKey{N: n, E: int(e.Int64())}
		case k.Kty == "EC" && k.Crv == "P-256":
			x, err1 := b64uint(k.X)
			y, err2 := b64uint(k.Y)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("JWKS key %d (kid %q): %w", i, k.Kid, err)
			}
			// Reject points off the curve (an invalid-curve attack).
			enc := make([]byte, 65)
			enc[0] = 4
			if len(x.Bytes()) > 32 || len(y.Bytes()) > 32 {
				return nil, fmt.Errorf("JWKS key %d (kid %q): coordinates longer than P-256's", i, k.Kid)
			}
			x.FillBytes(enc[1:33])
			y.FillBytes(enc[33:])
			ek, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), enc)
			if err != nil {
				return nil, fmt.Errorf("JWKS key %d (kid %q): %w", i, k.Kid, err)
			}
			pub = ek
		default:
			continue // another type or curve: not ours to use
		}
		vk, err := keyFor(pub)
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d (kid %q): %w", i, k.Kid, err)
		}
		if k.Alg != "" && k.Alg != vk.alg {
			return nil, fmt.Errorf("JWKS key %d (kid %q): alg %q on a key for %s", i, k.Kid, k.Alg, vk.alg)
		}
		if _, dup := keys[k.Kid]; dup {
			return nil, fmt.Errorf("JWKS: two keys with kid %q", k.Kid)
		}
		keys[k.Kid] = vk
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS: no RSA or EC P-256 signing key in the set")
	}
	return keys, nil
}

// b64uint decodes an unpadded base64url big-endian unsigned integer.
func b64uint(s string) (*big.Int, error) {
	if s == "" {
		return nil, errors.New("missing key parameter")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("key parameter is not base64url: %w", err)
	}
	return new(big.Int).SetBytes(b), nil
}
