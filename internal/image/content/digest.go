package content

import (
	"fmt"
	"hash"

	"github.com/berth-dev/berth/internal/image/reference"
)

// Algorithms the store accepts, and the one it uses when a Writer is given
// no expected digest.
const (
	SHA256 = string(reference.SHA256)
	SHA512 = string(reference.SHA512)

	canonical = SHA256
)

// digest is a validated digest; reference.Digest does the parsing, with
// the OCI image spec's rules (a supported algorithm, lower-case hex of the
// right length).
type digest struct {
	alg string // "sha256" or "sha512"
	hex string // lower-case hex, 64 or 128 characters
}

func (d digest) String() string { return d.alg + ":" + d.hex }

func newHash(alg string) hash.Hash { return reference.Algorithm(alg).Hash() }

// parseDigest validates s. Errors wrap this package's ErrInvalidDigest and
// quote s.
func parseDigest(s string) (digest, error) {
	d, err := reference.ParseDigest(s)
	if err != nil {
		return digest{}, fmt.Errorf("content: %w: %w", ErrInvalidDigest, err)
	}
	return digest{alg: string(d.Algorithm()), hex: d.Hex()}, nil
}

// sumDigest formats the current sum of h as a digest string.
func sumDigest(alg string, h hash.Hash) string {
	return reference.FromHash(reference.Algorithm(alg), h).String()
}
