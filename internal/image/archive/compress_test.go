package archive

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func gz(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	w, err := zstd.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestDetectCompression(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want Compression
	}{
		{[]byte{0x1f, 0x8b, 8, 0}, Gzip},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0}, Zstd},
		{[]byte{0x28, 0xb5, 0x2f}, None},
		{[]byte("usr/"), None},
		{nil, None},
	} {
		if got := DetectCompression(c.in); got != c.want {
			t.Errorf("DetectCompression(%x) = %v, want %v", c.in, got, c.want)
		}
	}
	if None.String() != "none" || Gzip.String() != "gzip" || Zstd.String() != "zstd" || Compression(9).String() != "Compression(9)" {
		t.Errorf("String() wrong")
	}
}

func TestMediaTypeCompression(t *testing.T) {
	for mt, want := range map[string]Compression{
		"application/vnd.oci.image.layer.v1.tar":                       None,
		"application/vnd.oci.image.layer.v1.tar+gzip":                  Gzip,
		"application/vnd.oci.image.layer.v1.tar+zstd":                  Zstd,
		"application/vnd.oci.image.layer.nondistributable.v1.tar":      None,
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": Gzip,
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": Zstd,
		"application/vnd.docker.image.rootfs.diff.tar.gzip":            Gzip,
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":    Gzip,
	} {
		got, err := MediaTypeCompression(mt)
		if err != nil || got != want {
			t.Errorf("MediaTypeCompression(%q) = %v, %v; want %v", mt, got, err, want)
		}
	}
	for _, mt := range []string{"", "application/vnd.oci.image.config.v1+json", "application/vnd.oci.image.layer.v1.tar+bzip2"} {
		_, err := MediaTypeCompression(mt)
		if !errors.Is(err, ErrUnsupportedCompression) || !strings.Contains(err.Error(), "media type") {
			t.Errorf("MediaTypeCompression(%q) err = %v", mt, err)
		}
	}
}

func TestDecompressStream(t *testing.T) {
	plain := tarBytes(t, reg("a", strings.Repeat("abc", 100000)), reg("b", "b"))
	for _, c := range []struct {
		name string
		in   []byte
		want Compression
	}{
		{"none", plain, None},
		{"gzip", gz(t, plain), Gzip},
		{"zstd", zst(t, plain), Zstd},
		{"gzip-multimember", append(gz(t, plain[:1000]), gz(t, plain[1000:])...), Gzip},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc, comp, err := DecompressStream(bytes.NewReader(c.in))
			if err != nil || comp != c.want {
				t.Fatalf("DecompressStream: %v, %v", comp, err)
			}
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("decompressed %d bytes (want %d), err %v", len(got), len(plain), err)
			}
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, c := range []struct{ name, magic string }{{"xz", "\xfd7zXZ\x00rest"}, {"bzip2", "BZh91AY&SY"}} {
		if _, _, err := DecompressStream(strings.NewReader(c.magic)); !errors.Is(err, ErrUnsupportedCompression) {
			t.Errorf("%s: err = %v", c.name, err)
		}
	}
}

// TestZstdCloseReleasesGoroutines: Close must stop decoder goroutines.
func TestZstdCloseReleasesGoroutines(t *testing.T) {
	z := zst(t, bytes.Repeat([]byte("x"), 1<<20))
	before := runtime.NumGoroutine()
	for range 20 {
		rc, _, err := DecompressStream(bytes.NewReader(z))
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(io.Discard, rc, 1000) // abandon mid-stream
		rc.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		t.Errorf("goroutines grew from %d to %d after closing 20 zstd readers", before, n)
	}
}
