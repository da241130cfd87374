package reference

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseDigest(t *testing.T) {
	for _, tt := range []struct {
		in  string
		alg Algorithm
		hex string
	}{
		{dg256, SHA256, hex64},
		{dg512, SHA512, hex128},
		{"sha256:" + strings.Repeat("0", 64), SHA256, strings.Repeat("0", 64)},
	} {
		d, err := ParseDigest(tt.in)
		if err != nil {
			t.Fatalf("ParseDigest(%q): %v", tt.in, err)
		}
		if d.Algorithm() != tt.alg || d.Hex() != tt.hex || d.String() != tt.in || d.IsZero() {
			t.Errorf("ParseDigest(%q) = %q %q %q", tt.in, d.Algorithm(), d.Hex(), d.String())
		}
		if back, err := ParseDigest(d.String()); err != nil || back != d {
			t.Errorf("round trip of %q: %v %v", tt.in, back, err)
		}
	}

	for _, tt := range []struct{ in, want string }{
		{"", "empty digest"},
		{hex64, `missing algorithm: write "` + dg256 + `"`},
		{"abc", "missing algorithm"},
		{"sha256", "missing algorithm"},
		{"sha256:", "a sha256 digest has 64 hex characters, this one has 0"},
		{"sha256:" + hex64[:63], "this one has 63"},
		{"sha256:" + hex64 + "0", "this one has 65"},
		{"sha512:" + hex64, "a sha512 digest has 128 hex characters, this one has 64"},
		{"sha256:" + strings.ToUpper(hex64), `hex must be lower-case: write "` + dg256 + `"`},
		{"sha256:" + hex64[:63] + "A", `hex must be lower-case: write "` + dg256[:len(dg256)-1] + `a"`},
		{"sha256:" + hex64[:62] + "Az", "hex must be lower-case"},
		{"sha256:" + hex64[:63] + "g", "'g' is not a hex character"},
		{"sha256:" + hex64[:63] + " ", "' ' is not a hex character"},
		{"sha256:" + hex64[:62] + "é", "'é' is not a hex character"},
		{"sha256:" + hex64[:63] + "\xff", "byte 0xff is not a hex character"},
		{"SHA256:" + hex64, `algorithm names are lower-case: write "` + dg256 + `"`},
		{"sha384:" + hex64, `unsupported algorithm "sha384": berth supports sha256 and sha512`},
		{"md5:abc", `unsupported algorithm "md5"`},
		{":" + hex64, `unsupported algorithm ""`},
		{"sha256:" + hex64 + ":x", "this one has 66"},
	} {
		d, err := ParseDigest(tt.in)
		if err == nil {
			t.Errorf("ParseDigest(%q) = %v, want an error", tt.in, d)
			continue
		}
		if !errors.Is(err, ErrInvalidDigest) || !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseDigest(%q): %v does not wrap ErrInvalidDigest and ErrInvalid", tt.in, err)
		}
		if prefix := "digest " + quote(tt.in) + ": "; !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseDigest(%q): %q, want %q then %q", tt.in, err, prefix, tt.want)
		}
		if !d.IsZero() {
			t.Errorf("ParseDigest(%q) returned %v with its error", tt.in, d)
		}
	}
}

func TestAlgorithm(t *testing.T) {
	if !SHA256.Available() || !SHA512.Available() || Algorithm("md5").Available() || Algorithm("").Available() {
		t.Error("Available")
	}
	if SHA256.Size() != 32 || SHA512.Size() != 64 || Algorithm("x").Size() != 0 {
		t.Error("Size")
	}
	if Canonical != SHA256 || SHA256.String() != "sha256" {
		t.Error("Canonical")
	}
	if SHA256.Hash().Size() != 32 || SHA512.Hash().Size() != 64 {
		t.Error("Hash")
	}
	mustPanic(t, "Hash of md5", func() { Algorithm("md5").Hash() })
	mustPanic(t, "FromBytes md5", func() { FromBytes("md5", nil) })
	mustPanic(t, "FromHash of a mismatched hash", func() { FromHash(SHA512, sha256.New()) })
	mustPanic(t, "MustParseDigest", func() { MustParseDigest("sha256:x") })
	mustPanic(t, "NewHash of zero", func() { Digest{}.NewHash() })
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

func TestFromBytesAndReader(t *testing.T) {
	data := bytes.Repeat([]byte("berth "), 100_000)
	s256 := sha256.Sum256(data)
	s512 := sha512.Sum512(data)
	want := map[Algorithm]string{
		SHA256: "sha256:" + hex.EncodeToString(s256[:]),
		SHA512: "sha512:" + hex.EncodeToString(s512[:]),
	}
	for alg, w := range want {
		if d := FromBytes(alg, data); d.String() != w {
			t.Errorf("FromBytes(%s) = %s, want %s", alg, d, w)
		}
		d, err := FromReader(alg, iotest.HalfReader(bytes.NewReader(data)))
		if err != nil || d.String() != w {
			t.Errorf("FromReader(%s) = %s, %v; want %s", alg, d, err, w)
		}
		h := alg.Hash()
		h.Write(data)
		if d := FromHash(alg, h); d.String() != w {
			t.Errorf("FromHash(%s) = %s", alg, d)
		}
		if d := MustParseDigest(w); d.NewHash().Size() != alg.Size() {
			t.Errorf("NewHash of %s", alg)
		}
	}
	// The empty blob, a well-known value.
	if d := FromBytes(SHA256, nil); d.String() != "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("empty: %s", d)
	}
	if _, err := FromReader("md5", strings.NewReader("")); !errors.Is(err, ErrInvalidDigest) {
		t.Errorf("FromReader(md5): %v", err)
	}
	boom := errors.New("boom")
	if _, err := FromReader(SHA256, iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Errorf("FromReader of a failing reader: %v", err)
	}
}

func TestVerifier(t *testing.T) {
	data := bytes.Repeat([]byte{0, 1, 2, 3, 4, 5, 6, 7}, 50_000)
	for _, alg := range []Algorithm{SHA256, SHA512} {
		d := FromBytes(alg, data)

		// Streamed in uneven chunks, as from the network.
		v := d.Verifier()
		if _, err := io.Copy(v, iotest.OneByteReader(bytes.NewReader(data[:1000]))); err != nil {
			t.Fatal(err)
		}
		if v.Verified() {
			t.Errorf("%s: verified after %d of %d bytes", alg, v.Size(), len(data))
		}
		if _, err := io.Copy(v, iotest.HalfReader(bytes.NewReader(data[1000:]))); err != nil {
			t.Fatal(err)
		}
		if !v.Verified() || v.Size() != int64(len(data)) || v.Digest() != d {
			t.Errorf("%s: Verified %v, Size %d, Digest %s", alg, v.Verified(), v.Size(), v.Digest())
		}
		// Verified does not disturb the running hash.
		v.Write([]byte{9})
		if v.Verified() || v.Digest() == d {
			t.Errorf("%s: verified with a trailing byte", alg)
		}

		// One flipped bit fails.
		bad := bytes.Clone(data)
		bad[len(bad)/2] ^= 1
		v = d.Verifier()
		v.Write(bad)
		if v.Verified() {
			t.Errorf("%s: a corrupted blob verified", alg)
		}
		if v.Digest() != FromBytes(alg, bad) {
			t.Errorf("%s: Digest() of the corrupted blob", alg)
		}
	}

	var zero Digest
	v := zero.Verifier()
	v.Write(nil)
	if v.Verified() || !v.Digest().IsZero() {
		t.Error("a Verifier of the zero Digest verified")
	}
	empty := FromBytes(SHA256, nil).Verifier()
	if !empty.Verified() {
		t.Error("the empty blob did not verify with nothing written")
	}
}

func TestDigestJSON(t *testing.T) {
	type desc struct {
		Digest Digest `json:"digest"`
	}
	in := desc{MustParseDigest(dg512)}
	b, err := json.Marshal(in)
	if err != nil || string(b) != `{"digest":"`+dg512+`"}` {
		t.Fatalf("Marshal: %s %v", b, err)
	}
	var out desc
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("Unmarshal: %v %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"digest":""}`), &out); err != nil || !out.Digest.IsZero() {
		t.Errorf("empty digest: %v %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"digest":"sha256:ABC"}`), &out); !errors.Is(err, ErrInvalidDigest) {
		t.Errorf("bad digest: %v", err)
	}
	var zero Digest
	if zero.String() != "" || zero.Hex() != "" || zero.Algorithm() != "" {
		t.Error("zero Digest")
	}
}
