package content

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// smallFS mounts a tmpfs of the given size on a temp dir, or skips.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("ENOSPC test needs root to mount a small tmpfs; skipped")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		t.Skipf("ENOSPC test cannot mount a tmpfs (%v); skipped", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func TestENOSPCDuringWrite(t *testing.T) {
	root := smallFS(t, "512k")
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(1<<20, 21) // twice what fits
	d := sha256Of(data)
	w, err := s.Writer(context.Background(), "too-big", d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for off := 0; off < len(data) && werr == nil; off += 64 << 10 {
		_, werr = w.Write(data[off : off+64<<10])
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("writing 1 MiB into 512 KiB: %v, want ENOSPC", werr)
	}
	if !strings.Contains(werr.Error(), `"too-big"`) || !strings.Contains(werr.Error(), s.ingestDir("too-big")) {
		t.Errorf("ENOSPC error %q does not name the ingest", werr)
	}
	t.Logf("error: %v", werr)

	// Consistent: nothing visible, the ingest holds exactly what Write
	// accepted, and resuming after Close continues from there.
	if _, err := s.Info(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Info: %v", err)
	}
	fi, err := os.Stat(filepath.Join(s.ingestDir("too-big"), dataFile))
	if err != nil || fi.Size() != w.Offset() {
		t.Fatalf("ingest data %v, %v; Offset %d", fi.Size(), err, w.Offset())
	}
	off := w.Offset()
	if err := w.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	w, err = s.Writer(context.Background(), "too-big", d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != off {
		t.Fatalf("resumed at %d, want %d", w.Offset(), off)
	}
	// Committing the short ingest fails and frees the space.
	if err := w.Commit(context.Background()); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("Commit: %v, want ErrSizeMismatch", err)
	}
	assertNoTrace(t, s, d)

	// The store works once there is room.
	small := randBytes(100<<10, 22)
	if !bytes.Equal(readBlob(t, s, mustPut(t, s, small)), small) {
		t.Fatal("content differs")
	}
}

func TestENOSPCStartingIngest(t *testing.T) {
	root := smallFS(t, "256k")
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(root, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	f.Close()
	_, err = s.Writer(context.Background(), "no-room", "", UnknownSize)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), `"no-room"`) {
		t.Fatalf("Writer on a full disk: %v, want ENOSPC naming the ingest", err)
	}
	t.Logf("error: %v", err)
	assertNoIngests(t, s)
	os.Remove(filler)
	mustPut(t, s, []byte("fits now"))
}
