package reference

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
)

// Algorithm names a digest algorithm, as written before the ':' of a digest.
type Algorithm string

// The supported algorithms (the OCI image spec's registered ones). Canonical
// is the one to use for new content.
const (
	SHA256    Algorithm = "sha256"
	SHA512    Algorithm = "sha512"
	Canonical           = SHA256
)

// Available reports whether a is supported.
func (a Algorithm) Available() bool { return a == SHA256 || a == SHA512 }

// Size returns the size in bytes of a's sums, 0 if a is not supported.
func (a Algorithm) Size() int {
	switch a {
	case SHA256:
		return sha256.Size
	case SHA512:
		return sha512.Size
	}
	return 0
}

// hexLen is the length of a's hex encoding, 0 if a is not supported.
func (a Algorithm) hexLen() int { return 2 * a.Size() }

// Hash returns a new hash.Hash for a. It panics if a is not Available: the
// algorithm of a Digest always is.
func (a Algorithm) Hash() hash.Hash {
	switch a {
	case SHA256:
		return sha256.New()
	case SHA512:
		return sha512.New()
	}
	panic(fmt.Sprintf("reference: unsupported digest algorithm %q", string(a)))
}

func (a Algorithm) String() string { return string(a) }

// Digest is a validated content digest such as "sha256:<64 hex>". The zero
// Digest means "no digest"; every other value has a supported algorithm and
// exactly the right number of lower-case hex characters. Digests are
// comparable with ==.
type Digest struct {
	alg Algorithm
	hex string
}

// ParseDigest validates s as "<algorithm>:<hex>" for sha256 (64 hex) or
// sha512 (128 hex), hex in lower case. Errors wrap ErrInvalidDigest and
// ErrInvalid.
func ParseDigest(s string) (Digest, error) {
	d, why := parseDigest(s)
	if why != "" {
		return Digest{}, &invalidError{kind: "digest", input: s, reason: why, digest: true}
	}
	return d, nil
}

// MustParseDigest is ParseDigest for constants known to be valid; it panics
// on error.
func MustParseDigest(s string) Digest {
	d, err := ParseDigest(s)
	if err != nil {
		panic(err)
	}
	return d
}

// parseDigest returns the digest or, if s is not valid, why not.
func parseDigest(s string) (Digest, string) {
	if s == "" {
		return Digest{}, `empty digest: want "sha256:" followed by 64 hex characters`
	}
	algs, enc, ok := strings.Cut(s, ":")
	if !ok {
		if isHex(s) && len(s) == SHA256.hexLen() {
			return Digest{}, fmt.Sprintf("missing algorithm: write %q", "sha256:"+strings.ToLower(s))
		}
		return Digest{}, `missing algorithm: want "<algorithm>:<hex>", e.g. "sha256:" followed by 64 hex characters`
	}
	alg := Algorithm(algs)
	if !alg.Available() {
		if l := Algorithm(strings.ToLower(algs)); l.Available() {
			return Digest{}, fmt.Sprintf("algorithm names are lower-case: write %q", string(l)+":"+enc)
		}
		return Digest{}, fmt.Sprintf("unsupported algorithm %q: berth supports sha256 and sha512", algs)
	}
	if len(enc) != alg.hexLen() {
		return Digest{}, fmt.Sprintf("a %s digest has %d hex characters, this one has %d", alg, alg.hexLen(), len(enc))
	}
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			if isHex(enc) {
				return Digest{}, fmt.Sprintf("hex must be lower-case: write %q", algs+":"+strings.ToLower(enc))
			}
			return Digest{}, "hex must be lower-case"
		default:
			return Digest{}, fmt.Sprintf("%s is not a hex character (0-9, a-f)", charAt(enc, i))
		}
	}
	return Digest{alg: alg, hex: enc}, ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// IsZero reports whether d is the zero Digest ("no digest").
func (d Digest) IsZero() bool { return d.alg == "" }

// Algorithm returns d's algorithm; "" for the zero Digest.
func (d Digest) Algorithm() Algorithm { return d.alg }

// Hex returns d's lower-case hex encoding; "" for the zero Digest.
func (d Digest) Hex() string { return d.hex }

// String returns "<algorithm>:<hex>", or "" for the zero Digest.
func (d Digest) String() string {
	if d.IsZero() {
		return ""
	}
	return string(d.alg) + ":" + d.hex
}

// NewHash returns a new hash.Hash for d's algorithm, to compute the digest of
// content while it streams; compare with FromHash(d.Algorithm(), h) == d, or
// use Verifier. It panics on the zero Digest.
func (d Digest) NewHash() hash.Hash { return d.alg.Hash() }

// Verifier returns a writer that hashes what is written to it and reports
// whether it matched d. A Verifier for the zero Digest never verifies.
func (d Digest) Verifier() *Verifier {
	v := &Verifier{want: d}
	if !d.IsZero() {
		v.h = d.alg.Hash()
	}
	return v
}

// MarshalText returns d.String(), so a Digest can be a JSON field.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText sets d to ParseDigest(text); empty text sets the zero
// Digest, so that what MarshalText writes always reads back.
func (d *Digest) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*d = Digest{}
		return nil
	}
	p, err := ParseDigest(string(text))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// Verifier checks streamed content against a digest. Write never fails.
type Verifier struct {
	want Digest
	h    hash.Hash
	n    int64
}

// Write hashes p.
func (v *Verifier) Write(p []byte) (int, error) {
	if v.h != nil {
		v.h.Write(p)
	}
	v.n += int64(len(p))
	return len(p), nil
}

// Verified reports whether the bytes written so far have the expected
// digest.
func (v *Verifier) Verified() bool {
	return v.h != nil && hex.EncodeToString(v.h.Sum(nil)) == v.want.hex
}

// Digest returns the digest of the bytes written so far (zero for a Verifier
// of the zero Digest), for error messages: "want X, got Y".
func (v *Verifier) Digest() Digest {
	if v.h == nil {
		return Digest{}
	}
	return FromHash(v.want.alg, v.h)
}

// Size returns how many bytes were written.
func (v *Verifier) Size() int64 { return v.n }

// FromHash returns the digest of the current sum of h, which must be a hash
// for alg (as from alg.Hash()); it panics if alg is not available or h's
// sums have the wrong size.
func FromHash(alg Algorithm, h hash.Hash) Digest {
	if !alg.Available() || h.Size() != alg.Size() {
		panic(fmt.Sprintf("reference: FromHash: a %d-byte hash is not %q", h.Size(), string(alg)))
	}
	return Digest{alg: alg, hex: hex.EncodeToString(h.Sum(nil))}
}

// FromBytes returns the alg digest of p. It panics if alg is not available.
func FromBytes(alg Algorithm, p []byte) Digest {
	h := alg.Hash()
	h.Write(p)
	return FromHash(alg, h)
}

// FromReader returns the alg digest of everything r yields until EOF.
func FromReader(alg Algorithm, r io.Reader) (Digest, error) {
	if !alg.Available() {
		return Digest{}, &invalidError{kind: "digest algorithm", input: string(alg),
			reason: "not supported: berth supports sha256 and sha512", digest: true}
	}
	h := alg.Hash()
	if _, err := io.Copy(h, r); err != nil {
		return Digest{}, fmt.Errorf("computing %s digest: %w", alg, err)
	}
	return FromHash(alg, h), nil
}
