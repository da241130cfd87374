package content

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/berth-dev/berth/internal/privdir"
)

// Info describes a committed blob.
type Info struct {
	Digest string // "sha256:<hex>" or "sha512:<hex>"
	Size   int64  // bytes
}

// ReaderAt reads a committed blob at random offsets.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	// Size is the blob's size in bytes.
	Size() int64
}

// Store is a content-addressed blob store rooted at a directory. See the
// package documentation for its layout and guarantees.
type Store struct {
	root string
}

// Open opens the store at root, creating its directories if needed.
func Open(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("content: empty store root")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("content: store root %q: %w", root, err)
	}
	s := &Store{root: abs}
	if err := privdir.Ensure(abs); err != nil {
		return nil, fmt.Errorf("content: open store: %w", err)
	}
	for _, dir := range []string{
		filepath.Join(abs, "blobs", SHA256),
		filepath.Join(abs, "blobs", SHA512),
	} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("content: open store: %w", err)
		}
	}
	if err := os.MkdirAll(s.ingestRoot(), 0o700); err != nil {
		return nil, fmt.Errorf("content: open store: %w", err)
	}
	return s, nil
}

// Root is the directory the store lives in.
func (s *Store) Root() string { return s.root }

func (s *Store) blobPath(d digest) string {
	return filepath.Join(s.root, "blobs", d.alg, d.hex)
}

func (s *Store) ingestRoot() string { return filepath.Join(s.root, "ingest") }

// Info returns the size of a committed blob.
func (s *Store) Info(dgst string) (Info, error) {
	d, err := parseDigest(dgst)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Lstat(s.blobPath(d))
	if err != nil {
		return Info{}, blobErr(d, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("content: blob %s: not a regular file (%s)", d, fi.Mode().Type())
	}
	return Info{Digest: d.String(), Size: fi.Size()}, nil
}

// Open opens a committed blob for sequential reading.
func (s *Store) Open(dgst string) (io.ReadSeekCloser, error) {
	f, _, err := s.openBlob(dgst)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// ReaderAt opens a committed blob for reading at random offsets.
func (s *Store) ReaderAt(dgst string) (ReaderAt, error) {
	f, size, err := s.openBlob(dgst)
	if err != nil {
		return nil, err
	}
	return &blobReaderAt{f: f, size: size}, nil
}

func (s *Store) openBlob(dgst string) (*os.File, int64, error) {
	d, err := parseDigest(dgst)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return nil, 0, blobErr(d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("content: blob %s: %w", d, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("content: blob %s: not a regular file (%s)", d, fi.Mode().Type())
	}
	return f, fi.Size(), nil
}

type blobReaderAt struct {
	f    *os.File
	size int64
}

func (r *blobReaderAt) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r *blobReaderAt) Close() error                            { return r.f.Close() }
func (r *blobReaderAt) Size() int64                             { return r.size }

// Delete removes a committed blob. Readers that have it open keep reading
// it. Deleting a blob that is not there returns an error wrapping
// ErrNotFound.
func (s *Store) Delete(dgst string) error {
	d, err := parseDigest(dgst)
	if err != nil {
		return err
	}
	if err := os.Remove(s.blobPath(d)); err != nil {
		return blobErr(d, err)
	}
	return nil
}

// Walk calls fn for every committed blob, sha256 first, each algorithm in
// lexical order of the hex digest. Blobs deleted while walking may or may
// not be reported; files in blobs/ that are not well-formed blob names are
// skipped. An error from fn stops the walk and is returned as is.
func (s *Store) Walk(fn func(Info) error) error {
	for _, alg := range []string{SHA256, SHA512} {
		dir := filepath.Join(s.root, "blobs", alg)
		entries, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("content: walk: %w", err)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			d, err := parseDigest(alg + ":" + e.Name())
			if err != nil {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // deleted meanwhile
				}
				return fmt.Errorf("content: walk: %w", err)
			}
			if err := fn(Info{Digest: d.String(), Size: fi.Size()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// blobErr maps a file error on a blob to the store's categories.
func blobErr(d digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("content: blob %s: %w", d, ErrNotFound)
	}
	return fmt.Errorf("content: blob %s: %w", d, err)
}

// syncDir fsyncs a directory so that entries created or removed in it
// survive a crash.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) {
		// Some file systems cannot fsync a directory; their entries are
		// as durable as they get.
		return nil
	}
	return err
}
