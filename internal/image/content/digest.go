package content

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// Algorithms the store accepts, and the one it uses when a Writer is given
// no expected digest.
const (
	SHA256 = "sha256"
	SHA512 = "sha512"

	canonical = SHA256
)

// digest is a parsed, validated digest string.
// TODO: replace with internal/image/reference's Digest once it exists.
type digest struct {
	alg string // "sha256" or "sha512"
	hex string // lower-case hex, 64 or 128 characters
}

func (d digest) String() string { return d.alg + ":" + d.hex }

// hexLen returns the length of the hex encoding for alg, 0 if unsupported.
func hexLen(alg string) int {
	switch alg {
	case SHA256:
		return sha256.Size * 2
	case SHA512:
		return sha512.Size * 2
	}
	return 0
}

func newHash(alg string) hash.Hash {
	if alg == SHA512 {
		return sha512.New()
	}
	return sha256.New()
}

// parseDigest validates s as "<alg>:<hex>" for a supported algorithm, with
// exactly the right number of lower-case hex characters (the OCI image
// spec's encoding for sha256 and sha512). Errors wrap ErrInvalidDigest and
// quote s.
func parseDigest(s string) (digest, error) {
	alg, enc, ok := strings.Cut(s, ":")
	if !ok {
		return digest{}, invalidDigest(s, "missing algorithm prefix")
	}
	n := hexLen(alg)
	if n == 0 {
		return digest{}, invalidDigest(s, fmt.Sprintf("unsupported algorithm %q (want sha256 or sha512)", alg))
	}
	if len(enc) != n {
		return digest{}, invalidDigest(s, fmt.Sprintf("%s needs %d hex characters, got %d", alg, n, len(enc)))
	}
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return digest{}, invalidDigest(s, fmt.Sprintf("character %q at %d is not lower-case hex", c, len(alg)+1+i))
		}
	}
	return digest{alg: alg, hex: enc}, nil
}

func invalidDigest(s, why string) error {
	return fmt.Errorf("content: %w %q: %s", ErrInvalidDigest, s, why)
}

// sumDigest formats the current sum of h as a digest string.
func sumDigest(alg string, h hash.Hash) string {
	return alg + ":" + hex.EncodeToString(h.Sum(nil))
}
