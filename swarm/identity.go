package swarm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Identity is a node's long-lived key pair; its public half is the node's
// peer id. The zero value means "none": New then makes an ephemeral one.
type Identity struct {
	priv crypto.PrivKey
}

// GenerateIdentity returns a new Ed25519 identity.
func GenerateIdentity() (Identity, error) {
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return Identity{}, fmt.Errorf("generate identity: %w", err)
	}
	return Identity{priv: priv}, nil
}

// LoadOrCreateIdentity reads the identity stored at path, or, when there is
// no file, generates one and stores it there (mode 0600, written atomically).
// created says which happened. A file that exists but cannot be read as a key
// is an error, never silently replaced: that would change the node's peer id.
func LoadOrCreateIdentity(path string) (id Identity, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		priv, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return Identity{}, false, fmt.Errorf("identity %s: %w", path, err)
		}
		return Identity{priv: priv}, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return Identity{}, false, fmt.Errorf("identity: %w", err)
	}
	id, err = GenerateIdentity()
	if err != nil {
		return Identity{}, false, err
	}
	b, err = crypto.MarshalPrivateKey(id.priv)
	if err != nil {
		return Identity{}, false, fmt.Errorf("identity: %w", err)
	}
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		return Identity{}, false, fmt.Errorf("identity: %w", err)
	}
	return id, true, nil
}

// IsZero reports whether id holds no key.
func (id Identity) IsZero() bool { return id.priv == nil }

// PeerID returns the peer id derived from the identity's public key, or ""
// for the zero identity.
func (id Identity) PeerID() string {
	if id.priv == nil {
		return ""
	}
	pid, err := peer.IDFromPrivateKey(id.priv)
	if err != nil {
		return ""
	}
	return pid.String()
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
