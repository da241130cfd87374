package archive

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestDecompressBroken: truncated or corrupt compressed layers make Apply
// fail rather than report a partial success.
func TestDecompressBroken(t *testing.T) {
	requireRoot(t)
	plain := tarBytes(t, reg("a", strings.Repeat("abcdefgh", 50000)), reg("b", "b"))
	g, z := gz(t, plain), zst(t, plain)
	corrupt := func(b []byte, at int) []byte { c := bytes.Clone(b); c[at] ^= 0xff; return c }
	for _, c := range []struct {
		name string
		in   []byte
	}{
		{"gzip-truncated-mid", g[:len(g)/2]},
		{"gzip-truncated-trailer", g[:len(g)-4]}, // CRC/size missing: only the drain sees it
		{"gzip-corrupt", corrupt(g, len(g)/2)},
		{"gzip-bad-crc", corrupt(g, len(g)-6)},
		{"zstd-truncated-mid", z[:len(z)/2]},
		{"zstd-truncated-end", z[:len(z)-3]},
		{"zstd-corrupt", corrupt(z, len(z)/2)},
		{"tar-truncated", plain[:len(plain)/2]},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSandbox(t)
			rc, _, err := DecompressStream(bytes.NewReader(c.in))
			if err == nil {
				_, err = applyBytesReader(s.root, rc)
				rc.Close()
			}
			if err == nil {
				t.Fatalf("broken stream applied without error")
			}
			t.Logf("err = %v", err)
			s.check(t)
		})
	}
}

func applyBytesReader(root string, r io.Reader) (Stats, error) {
	return Apply(t0ctx, root, r, Options{NoSync: true})
}
