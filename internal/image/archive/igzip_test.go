package archive

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

func igzipBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("igzip")
	if err != nil {
		t.Skip("igzip not installed (apt-get install isal): the external decoder is untested here")
	}
	return bin
}

func gzipped(t *testing.T, members ...[]byte) []byte {
	var buf bytes.Buffer
	for _, m := range members {
		zw := gzip.NewWriter(&buf)
		zw.Write(m)
		zw.Close()
	}
	return buf.Bytes()
}

func TestExternalGzipMatchesGoDecoder(t *testing.T) {
	bin := igzipBinary(t)
	random := make([]byte, 3<<20)
	rand.Read(random)
	text := bytes.Repeat([]byte("layer data "), 1<<18)
	for name, in := range map[string][]byte{
		"random":       gzipped(t, random),
		"text":         gzipped(t, text),
		"multi-member": gzipped(t, text[:1000], random[:5000], text),
		"empty":        gzipped(t, nil),
	} {
		t.Run(name, func(t *testing.T) {
			src := bytes.NewReader(in)
			rc, err := startExternalGzip(bin, src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			zr, _ := gzip.NewReader(bytes.NewReader(in))
			want, _ := io.ReadAll(zr)
			if !bytes.Equal(got, want) {
				t.Fatalf("igzip gave %d bytes, the Go decoder %d", len(got), len(want))
			}
			if src.Len() != 0 {
				t.Fatalf("%d input bytes left unread: a hasher of the input would miss them", src.Len())
			}
		})
	}
}

func TestExternalGzipRejectsBadStreams(t *testing.T) {
	bin := igzipBinary(t)
	good := gzipped(t, bytes.Repeat([]byte("x"), 1<<20))
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)/2] ^= 0xff
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-6] ^= 0xff
	for name, in := range map[string][]byte{
		"truncated":  good[:len(good)/2],
		"no-trailer": good[:len(good)-8],
		"corrupt":    corrupt,
		"bad-crc":    badCRC,
	} {
		t.Run(name, func(t *testing.T) {
			rc, err := startExternalGzip(bin, bytes.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			_, err = io.ReadAll(rc)
			if err == nil || !strings.Contains(err.Error(), "igzip") {
				t.Fatalf("bad stream read without an error naming igzip: %v", err)
			}
		})
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestExternalGzipReportsInputError(t *testing.T) {
	bin := igzipBinary(t)
	good := gzipped(t, bytes.Repeat([]byte("y"), 1<<20))
	netErr := errors.New("connection reset by peer")
	rc, err := startExternalGzip(bin, &failingReader{data: good[:len(good)/3], err: netErr})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, netErr) {
		t.Fatalf("input failure surfaced as %v, want the input's own error", err)
	}
}

func TestExternalGzipCloseStopsTheChild(t *testing.T) {
	bin := igzipBinary(t)
	pr, pw := io.Pipe() // input that never ends
	defer pw.Close()
	go pw.Write(gzipped(t, []byte("start"))[:10])
	rc, err := startExternalGzip(bin, pr)
	if err != nil {
		t.Fatal(err)
	}
	pid := rc.(*processReader).cmd.Process.Pid
	if os.Geteuid() == 0 {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] != "65534" {
				t.Fatalf("the decoder runs as uid %s, want nobody (65534): %s", f[1], line)
			}
		}
	}
	pw.CloseWithError(errors.New("gone")) // lets the feeder end once the child is killed
	rc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("igzip (pid %d) still running after Close", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
