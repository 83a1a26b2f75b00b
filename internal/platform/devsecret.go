package platform

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A development secret is drawn at random on every start, never a constant:
// a token forged offline with a published secret must not open a socket.
// It is kept in a file of the user's (HEXRIDE_DEV_SECRET_FILE) so that
// `hexride token` on the same machine signs what the running platform
// accepts; a token minted for an earlier start no longer works.

// defaultDevSecretFile is where the development secret is kept unless
// HEXRIDE_DEV_SECRET_FILE says otherwise: the user's cache directory, or
// the system's temporary one.
func defaultDevSecretFile() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "hexride", "dev-secret")
}

// newDevSecret draws a secret and, if path is set, writes it there (only
// the user may read it), replacing it whole so a reader never sees half.
func newDevSecret(path string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("draw a development secret: %w", err)
	}
	secret := hex.EncodeToString(b[:])
	if path == "" {
		return secret, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("keep the development secret: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".dev-secret-*")
	if err != nil {
		return "", fmt.Errorf("keep the development secret: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; else a leftover
	if _, err := tmp.WriteString(secret + "\n"); err != nil {
		tmp.Close()
		return "", fmt.Errorf("keep the development secret in %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("keep the development secret in %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("keep the development secret in %s: %w", path, err)
	}
	return secret, nil
}

// readDevSecret reads the secret the running platform kept at path.
func readDevSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no development secret at %s: start hexride first (it draws one on every start and keeps it there), or set HEXRIDE_JWT_SECRET", path)
	}
	if err != nil {
		return "", fmt.Errorf("read the development secret: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("the development secret at %s is empty", path)
	}
	return s, nil
}
