package turnsrv

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// SecretFile is the name, inside the state directory, of the TURN REST
// secret icebox generates when none is configured.
const SecretFile = "turn-secret"

// LoadOrCreateSecret returns the secret kept in dir/SecretFile, creating
// dir (mode 0700) and a new 32-byte random secret (base64url, mode 0600)
// when there is none. A file readable by others is refused.
func LoadOrCreateSecret(dir string) (string, error) {
	path := filepath.Join(dir, SecretFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		fi, err := os.Stat(path)
		if err != nil {
			return "", err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("%s: mode %04o lets others read the TURN secret; chmod 600 it", path, fi.Mode().Perm())
		}
		secret := strings.TrimSpace(string(data))
		if len(secret) < 16 {
			return "", fmt.Errorf("%s: secret is shorter than 16 characters", path)
		}
		return secret, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return secret, nil
}
