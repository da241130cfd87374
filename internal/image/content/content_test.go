package content

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func sha256Of(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func sha512Of(b []byte) string {
	s := sha512.Sum512(b)
	return "sha512:" + hex.EncodeToString(s[:])
}

// put writes data through a Writer and commits it.
func put(t testing.TB, s *Store, ref string, data []byte, expected string, size int64) error {
	t.Helper()
	w, err := s.Writer(context.Background(), ref, expected, size)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	return w.Commit(context.Background())
}

func mustPut(t testing.TB, s *Store, data []byte) string {
	t.Helper()
	d := sha256Of(data)
	if err := put(t, s, "ref-"+d, data, d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	return d
}

func readBlob(t testing.TB, s *Store, d string) []byte {
	t.Helper()
	r, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ingestEntries(t testing.TB, s *Store) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(s.Root(), "ingest"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func walkAll(t testing.TB, s *Store) []Info {
	t.Helper()
	var infos []Info
	if err := s.Walk(func(i Info) error { infos = append(infos, i); return nil }); err != nil {
		t.Fatal(err)
	}
	return infos
}

// assertNoTrace checks that d is not visible and no ingest is left.
func assertNoTrace(t *testing.T, s *Store, d string) {
	t.Helper()
	if _, err := s.Info(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Info(%s) = %v, want ErrNotFound", d, err)
	}
	if infos := walkAll(t, s); len(infos) != 0 {
		t.Errorf("Walk found %v, want nothing", infos)
	}
	if names := ingestEntries(t, s); len(names) != 0 {
		t.Errorf("ingest dir holds %v, want nothing", names)
	}
}

func TestParseDigest(t *testing.T) {
	h64 := strings.Repeat("ab", 32)
	h128 := strings.Repeat("0f", 64)
	for _, ok := range []string{"sha256:" + h64, "sha512:" + h128} {
		d, err := parseDigest(ok)
		if err != nil || d.String() != ok {
			t.Errorf("parseDigest(%q) = %v, %v", ok, d, err)
		}
	}
	for _, bad := range []string{
		"",
		"sha256",
		"sha256:",
		":" + h64,
		h64,
		"sha256:" + h64[:63],
		"sha256:" + h64 + "0",
		"sha256:" + strings.ToUpper(h64),
		"sha256:" + h64[:63] + "g",
		"sha512:" + h64,
		"sha256:" + h128,
		"md5:" + h64[:32],
		"SHA256:" + h64,
		"sha256:" + h64[:60] + "/../",
		" sha256:" + h64,
		"sha256:" + h64 + "\n",
	} {
		_, err := parseDigest(bad)
		if !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("parseDigest(%q) = %v, want ErrInvalidDigest", bad, err)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("error %q does not quote the input %q", err, bad)
		}
	}
}

func TestInvalidDigestRejectedEverywhere(t *testing.T) {
	s := newStore(t)
	for _, bad := range []string{"sha256:nothex", "latest", "sha256:" + strings.Repeat("A", 64), "sha256:../../etc/passwd"} {
		quoted := fmt.Sprintf("%q", bad)
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, ErrInvalidDigest) || !strings.Contains(err.Error(), quoted) {
				t.Errorf("%s(%s): %v, want ErrInvalidDigest naming the input", op, quoted, err)
			}
		}
		_, err := s.Info(bad)
		check("Info", err)
		_, err = s.Open(bad)
		check("Open", err)
		_, err = s.ReaderAt(bad)
		check("ReaderAt", err)
		check("Delete", s.Delete(bad))
		_, err = s.Writer(context.Background(), "r", bad, 1)
		check("Writer", err)
	}
	if names := ingestEntries(t, s); len(names) != 0 {
		t.Errorf("rejected writers left ingests %v", names)
	}
}

func TestWriteCommitRead(t *testing.T) {
	for _, tc := range []struct {
		alg    string
		digest func([]byte) string
	}{{SHA256, sha256Of}, {SHA512, sha512Of}} {
		t.Run(tc.alg, func(t *testing.T) {
			s := newStore(t)
			data := randBytes(1<<20+13, 1)
			d := tc.digest(data)
			w, err := s.Writer(context.Background(), "pull-1", d, int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if w.Offset() != 0 {
				t.Fatalf("fresh Offset = %d", w.Offset())
			}
			// In pieces, as a network stream would come.
			for off := 0; off < len(data); off += 4096 {
				end := min(off+4096, len(data))
				if _, err := w.Write(data[off:end]); err != nil {
					t.Fatal(err)
				}
			}
			if w.Offset() != int64(len(data)) {
				t.Fatalf("Offset = %d, want %d", w.Offset(), len(data))
			}
			// Not visible before Commit.
			if _, err := s.Info(d); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Info before Commit: %v", err)
			}
			if err := w.Commit(context.Background()); err != nil {
				t.Fatal(err)
			}
			if w.Digest() != d {
				t.Errorf("Digest() = %s, want %s", w.Digest(), d)
			}
			info, err := s.Info(d)
			if err != nil || info != (Info{Digest: d, Size: int64(len(data))}) {
				t.Fatalf("Info = %+v, %v", info, err)
			}
			if got := readBlob(t, s, d); !bytes.Equal(got, data) {
				t.Fatal("Open: content differs")
			}
			ra, err := s.ReaderAt(d)
			if err != nil {
				t.Fatal(err)
			}
			defer ra.Close()
			if ra.Size() != int64(len(data)) {
				t.Errorf("ReaderAt.Size = %d", ra.Size())
			}
			p := make([]byte, 100)
			if _, err := ra.ReadAt(p, 777); err != nil || !bytes.Equal(p, data[777:877]) {
				t.Errorf("ReadAt: %v", err)
			}
			fi, err := os.Stat(filepath.Join(s.Root(), "blobs", tc.alg, strings.TrimPrefix(d, tc.alg+":")))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o444 {
				t.Errorf("blob mode = %v, want 0444", fi.Mode().Perm())
			}
			if names := ingestEntries(t, s); len(names) != 0 {
				t.Errorf("ingest left after Commit: %v", names)
			}
			// The Writer has ended.
			if _, err := w.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
				t.Errorf("Write after Commit: %v", err)
			}
			if err := w.Commit(context.Background()); !errors.Is(err, os.ErrClosed) {
				t.Errorf("second Commit: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Errorf("Close after Commit: %v", err)
			}
		})
	}
}

func TestEmptyBlob(t *testing.T) {
	s := newStore(t)
	d := mustPut(t, s, nil)
	if d != "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("digest of nothing = %s", d)
	}
	if info, err := s.Info(d); err != nil || info.Size != 0 {
		t.Fatalf("Info = %+v, %v", info, err)
	}
}

func TestUnknownDigestAndSize(t *testing.T) {
	s := newStore(t)
	data := randBytes(10000, 2)
	w, err := s.Writer(context.Background(), "load", "", UnknownSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w.Digest() != sha256Of(data) {
		t.Fatalf("Digest() = %s", w.Digest())
	}
	if !bytes.Equal(readBlob(t, s, sha256Of(data)), data) {
		t.Fatal("content differs")
	}
	// The same bytes again: already there.
	w, err = s.Writer(context.Background(), "load", "", UnknownSize)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Commit(context.Background()); !IsAlreadyExists(err) {
		t.Fatalf("second commit: %v, want ErrAlreadyExists", err)
	}
	if _, err := s.Writer(context.Background(), "bad", "", -2); err == nil {
		t.Fatal("size -2 accepted")
	}
}

func TestDigestMismatchNeverVisible(t *testing.T) {
	for _, alg := range []string{SHA256, SHA512} {
		t.Run(alg, func(t *testing.T) {
			s := newStore(t)
			data := randBytes(5000, 3)
			claimed := sha256Of([]byte("something else"))
			actual := sha256Of(data)
			if alg == SHA512 {
				claimed, actual = sha512Of([]byte("something else")), sha512Of(data)
			}
			err := put(t, s, "r", data, claimed, int64(len(data)))
			if !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("Commit = %v, want ErrDigestMismatch", err)
			}
			if !strings.Contains(err.Error(), claimed) || !strings.Contains(err.Error(), actual) {
				t.Errorf("error %q does not name expected %s and actual %s", err, claimed, actual)
			}
			assertNoTrace(t, s, claimed)
			if _, err := s.Info(actual); !errors.Is(err, ErrNotFound) {
				t.Errorf("the bytes became visible under their own digest: %v", err)
			}
		})
	}
}

func TestSizeMismatchNeverVisible(t *testing.T) {
	data := randBytes(5000, 4)
	d := sha256Of(data)

	t.Run("short", func(t *testing.T) {
		s := newStore(t)
		w, err := s.Writer(context.Background(), "r", d, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data[:4000])
		err = w.Commit(context.Background())
		if !errors.Is(err, ErrSizeMismatch) {
			t.Fatalf("Commit = %v, want ErrSizeMismatch", err)
		}
		if !strings.Contains(err.Error(), d) || !strings.Contains(err.Error(), sha256Of(data[:4000])) {
			t.Errorf("error %q does not name expected and actual digests", err)
		}
		assertNoTrace(t, s, d)
	})

	t.Run("long", func(t *testing.T) {
		s := newStore(t)
		// The right bytes, but claimed one shorter: the digest would
		// also fail, the size must fail first and early.
		w, err := s.Writer(context.Background(), "r", d, int64(len(data)-1))
		if err != nil {
			t.Fatal(err)
		}
		n, err := w.Write(data)
		if n != 0 || !errors.Is(err, ErrSizeMismatch) {
			t.Fatalf("Write past size = %d, %v, want 0, ErrSizeMismatch", n, err)
		}
		if !strings.Contains(err.Error(), d) || !strings.Contains(err.Error(), `"r"`) {
			t.Errorf("error %q does not name the ingest and the digest", err)
		}
		if _, err := w.Write(data[:1]); !errors.Is(err, ErrSizeMismatch) {
			t.Errorf("Write after overflow = %v, want the sticky ErrSizeMismatch", err)
		}
		if err := w.Commit(context.Background()); !errors.Is(err, ErrSizeMismatch) {
			t.Fatalf("Commit = %v, want ErrSizeMismatch", err)
		}
		assertNoTrace(t, s, d)
	})

	t.Run("exact-size-wrong-bytes", func(t *testing.T) {
		s := newStore(t)
		w, err := s.Writer(context.Background(), "r", d, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data[:4999])
		w.Write([]byte{data[4999] ^ 1})
		if err := w.Commit(context.Background()); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("Commit = %v, want ErrDigestMismatch", err)
		}
		assertNoTrace(t, s, d)
	})
}

func TestAlreadyExists(t *testing.T) {
	s := newStore(t)
	data := randBytes(3000, 5)
	d := mustPut(t, s, data)
	_, err := s.Writer(context.Background(), "again", d, int64(len(data)))
	if !IsAlreadyExists(err) || !strings.Contains(err.Error(), d) {
		t.Fatalf("Writer for a stored blob = %v, want ErrAlreadyExists naming it", err)
	}
	if names := ingestEntries(t, s); len(names) != 0 {
		t.Errorf("ingests left: %v", names)
	}
}

func TestConcurrentWritersSameDigest(t *testing.T) {
	s := newStore(t)
	data := randBytes(1<<20, 6)
	d := sha256Of(data)
	const n = 8
	ws := make([]*Writer, n)
	for i := range ws {
		w, err := s.Writer(context.Background(), fmt.Sprintf("ref-%d", i), d, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = w
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
				errs[i] = err
				return
			}
			errs[i] = w.Commit(context.Background())
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case IsAlreadyExists(err):
		default:
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d commits linked the blob, want exactly 1", won)
	}
	files, _ := os.ReadDir(filepath.Join(s.Root(), "blobs", SHA256))
	if len(files) != 1 {
		t.Errorf("blobs/sha256 holds %d files, want 1", len(files))
	}
	if !bytes.Equal(readBlob(t, s, d), data) {
		t.Error("content differs")
	}
	if names := ingestEntries(t, s); len(names) != 0 {
		t.Errorf("ingests left: %v", names)
	}
}

func TestConcurrentWritersSameRef(t *testing.T) {
	s := newStore(t)
	data := randBytes(1000, 7)
	d := sha256Of(data)
	const n = 8
	ws := make([]*Writer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws[i], errs[i] = s.Writer(context.Background(), "same", d, int64(len(data)))
		}()
	}
	wg.Wait()
	var holder *Writer
	for i, err := range errs {
		switch {
		case err == nil:
			if holder != nil {
				t.Fatal("two Writers hold the same ingest")
			}
			holder = ws[i]
		case errors.Is(err, ErrLocked):
			if !strings.Contains(err.Error(), `"same"`) {
				t.Errorf("ErrLocked does not name the ref: %v", err)
			}
		default:
			t.Errorf("Writer %d: %v", i, err)
		}
	}
	if holder == nil {
		t.Fatal("no Writer got the ingest")
	}
	holder.Write(data[:500])
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	w, err := s.Writer(context.Background(), "same", d, int64(len(data)))
	if err != nil {
		t.Fatalf("Writer after Close: %v", err)
	}
	if w.Offset() != 500 {
		t.Fatalf("resumed at %d, want 500", w.Offset())
	}
	w.Write(data[500:])
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestResumeAfterClose(t *testing.T) {
	s := newStore(t)
	data := randBytes(3<<20+7, 8)
	d := sha512Of(data)
	w, err := s.Writer(context.Background(), "r", d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:1<<20])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ing, err := s.Ingests()
	if err != nil {
		t.Fatal(err)
	}
	if len(ing) != 1 || ing[0].Ref != "r" || ing[0].Expected != d || ing[0].Size != int64(len(data)) || ing[0].Offset != 1<<20 ||
		ing[0].StartedAt.IsZero() || ing[0].UpdatedAt.IsZero() {
		t.Fatalf("Ingests = %+v", ing)
	}
	st, err := readStatus(s.ingestDir("r"))
	if err != nil || st.Offset != 1<<20 {
		t.Errorf("status.json = %+v, %v; want offset %d", st, err, 1<<20)
	}
	w, err = s.Writer(context.Background(), "r", d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 1<<20 {
		t.Fatalf("resumed at %d", w.Offset())
	}
	w.Write(data[w.Offset():])
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, s, d), data) {
		t.Fatal("content differs")
	}
}

func TestResumeWithOtherExpectationRestarts(t *testing.T) {
	s := newStore(t)
	a, b := randBytes(4000, 9), randBytes(3000, 10)
	w, _ := s.Writer(context.Background(), "r", sha256Of(a), int64(len(a)))
	w.Write(a[:2000])
	w.Close()
	w, err := s.Writer(context.Background(), "r", sha256Of(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 0 {
		t.Fatalf("ingest for other content resumed at %d", w.Offset())
	}
	w.Write(b)
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Bytes in an ingest that changed while nobody held it (a crash, a disk
// error) are re-hashed on resume; the commit then fails and they vanish.
func TestResumeOfCorruptIngestNeverVisible(t *testing.T) {
	s := newStore(t)
	data := randBytes(4000, 11)
	d := sha256Of(data)
	w, _ := s.Writer(context.Background(), "r", d, int64(len(data)))
	w.Write(data[:2000])
	w.Close()
	path := filepath.Join(s.ingestDir("r"), dataFile)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0}, 100)
	f.Close()
	w, err = s.Writer(context.Background(), "r", d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 2000 {
		t.Fatalf("Offset %d", w.Offset())
	}
	w.Write(data[2000:])
	if err := w.Commit(context.Background()); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Commit = %v, want ErrDigestMismatch", err)
	}
	assertNoTrace(t, s, d)
}

// dropWriter simulates the death of the process holding w: the kernel
// closes its descriptors (releasing the lock), nothing else happens.
func dropWriter(w *Writer) {
	w.f.Close()
	w.lock.Close()
}

func TestDroppedWriterResumes(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(2<<20, 12)
	d := sha256Of(data)
	w, err := s.Writer(context.Background(), "r", d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:777777])
	dropWriter(w)

	s, err = Open(root)
	if err != nil {
		t.Fatal(err)
	}
	ing, _ := s.Ingests()
	if len(ing) != 1 || ing[0].Offset != 777777 {
		t.Fatalf("Ingests = %+v", ing)
	}
	if _, err := s.Info(d); !errors.Is(err, ErrNotFound) {
		t.Fatal("partial blob visible")
	}
	w, err = s.Writer(context.Background(), "r", d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 777777 {
		t.Fatalf("resumed at %d, want 777777", w.Offset())
	}
	w.Write(data[w.Offset():])
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, s, d), data) {
		t.Fatal("content differs")
	}
}

// A commit killed after linking the blob but before removing the ingest
// leaves read-only data that shares its inode with the blob. A Writer for
// that ref must start over and never write into it.
func TestInterruptedCommitIsNotAppended(t *testing.T) {
	s := newStore(t)
	data := randBytes(3000, 13)
	d := sha256Of(data)
	w, _ := s.Writer(context.Background(), "r", "", UnknownSize)
	w.Write(data)
	// What Commit does up to the link, then "crash".
	w.f.Chmod(0o444)
	dd, _ := parseDigest(d)
	if err := os.Link(w.f.Name(), s.blobPath(dd)); err != nil {
		t.Fatal(err)
	}
	dropWriter(w)

	w, err := s.Writer(context.Background(), "r", "", UnknownSize)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 0 {
		t.Fatalf("read-only ingest resumed at %d", w.Offset())
	}
	other := randBytes(100, 14)
	w.Write(other)
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, s, d), data) {
		t.Fatal("committed blob was modified through the ingest")
	}
	if !bytes.Equal(readBlob(t, s, sha256Of(other)), other) {
		t.Fatal("new blob differs")
	}
}

func TestAbort(t *testing.T) {
	s := newStore(t)
	data := randBytes(100, 15)
	w, _ := s.Writer(context.Background(), "r", sha256Of(data), 100)
	w.Write(data[:50])
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	assertNoTrace(t, s, sha256Of(data))
	if err := w.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
}

func TestDelete(t *testing.T) {
	s := newStore(t)
	data := randBytes(100, 16)
	d := mustPut(t, s, data)
	r, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := s.Delete(d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Info after Delete: %v", err)
	}
	if b, err := io.ReadAll(r); err != nil || !bytes.Equal(b, data) {
		t.Errorf("open reader after Delete: %v", err)
	}
	err = s.Delete(d)
	if !errors.Is(err, ErrNotFound) || !IsNotFound(err) || !strings.Contains(err.Error(), d) {
		t.Errorf("Delete of a missing blob = %v, want ErrNotFound naming it", err)
	}
	if _, err := s.Open(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open of a missing blob = %v", err)
	}
	if _, err := s.ReaderAt(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReaderAt of a missing blob = %v", err)
	}
	// Writable again after Delete.
	mustPut(t, s, data)
}

func TestWalk(t *testing.T) {
	s := newStore(t)
	want := map[string]int64{}
	for i := range 5 {
		b := randBytes(100+i, int64(100+i))
		want[mustPut(t, s, b)] = int64(len(b))
		b5 := randBytes(200+i, int64(200+i))
		d5 := sha512Of(b5)
		if err := put(t, s, "x"+d5, b5, d5, int64(len(b5))); err != nil {
			t.Fatal(err)
		}
		want[d5] = int64(len(b5))
	}
	// Debris that is not a blob name is ignored.
	os.WriteFile(filepath.Join(s.Root(), "blobs", SHA256, "junk.tmp"), nil, 0o644)
	os.Mkdir(filepath.Join(s.Root(), "blobs", SHA256, strings.Repeat("a", 64)), 0o755)
	got := walkAll(t, s)
	if len(got) != len(want) {
		t.Fatalf("Walk found %d blobs, want %d: %v", len(got), len(want), got)
	}
	for i, info := range got {
		if want[info.Digest] != info.Size {
			t.Errorf("Walk: %+v, want size %d", info, want[info.Digest])
		}
		if i > 0 && strings.HasPrefix(got[i-1].Digest, SHA512) && strings.HasPrefix(info.Digest, SHA256) {
			t.Errorf("Walk order: sha512 before sha256")
		}
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.Walk(func(Info) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("Walk with failing fn = %v after %d calls", err, calls)
	}
}

func TestCleanIngests(t *testing.T) {
	s := newStore(t)
	old := time.Now().Add(-2 * time.Hour)
	age := func(ref string) {
		dir := s.ingestDir(ref)
		for _, p := range []string{filepath.Join(dir, dataFile), filepath.Join(dir, statusFile), dir} {
			os.Chtimes(p, old, old)
		}
	}
	// recent: closed just now; stale: closed long ago; held: old but
	// someone is writing it.
	for _, ref := range []string{"recent", "stale", "held"} {
		w, err := s.Writer(context.Background(), ref, "", UnknownSize)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(ref))
		w.Close()
	}
	age("stale")
	age("held")
	held, err := s.Writer(context.Background(), "held", "", UnknownSize)
	if err != nil {
		t.Fatal(err)
	}
	// Debris: a directory without status, at any age.
	debris := filepath.Join(s.ingestRoot(), "debris")
	os.Mkdir(debris, 0o700)

	if err := s.CleanIngests(time.Hour); err != nil {
		t.Fatal(err)
	}
	var refs []string
	ing, _ := s.Ingests()
	for _, i := range ing {
		refs = append(refs, i.Ref)
	}
	if fmt.Sprint(refs) != "[held recent]" {
		t.Errorf("after CleanIngests: %v, want [held recent]", refs)
	}
	if _, err := os.Stat(debris); !os.IsNotExist(err) {
		t.Errorf("debris kept: %v", err)
	}
	// The held writer is unharmed.
	if held.Offset() != 4 {
		t.Errorf("held Offset = %d", held.Offset())
	}
	held.Write([]byte("!"))
	if err := held.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.CleanIngests(0); err != nil {
		t.Fatal(err)
	}
	if names := ingestEntries(t, s); len(names) != 0 {
		t.Errorf("CleanIngests(0) left %v", names)
	}
}

func TestContextCancel(t *testing.T) {
	s := newStore(t)
	data := randBytes(100, 17)
	d := sha256Of(data)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Writer(ctx, "r", d, 100); !errors.Is(err, context.Canceled) {
		t.Fatalf("Writer with cancelled ctx: %v", err)
	}
	w, err := s.Writer(context.Background(), "r", d, 100)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Commit(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit with cancelled ctx: %v", err)
	}
	if _, err := s.Info(d); !errors.Is(err, ErrNotFound) {
		t.Fatal("visible after cancelled commit")
	}
	// Still open: commit again.
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsEmptyRoot(t *testing.T) {
	if _, err := Open(""); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}

func BenchmarkWrite(b *testing.B) {
	s := newStore(b)
	data := randBytes(64<<20, 42)
	d := sha256Of(data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, err := s.Writer(context.Background(), fmt.Sprint("bench-", i), d, int64(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		if err := w.Commit(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Delete(d); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
