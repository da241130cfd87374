package content

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// UnknownSize, passed to Store.Writer, means the size is not known in
// advance and is not checked.
const UnknownSize = -1

// Writer streams one blob into an ingest. Its bytes are hashed as they are
// written; Commit verifies and publishes them. A Writer must end with
// Commit, Close (keep the ingest to resume later) or Abort (drop it). It is
// not safe for concurrent use.
type Writer struct {
	s        *Store
	ref      string
	dir      string
	lock     *os.File // the flocked ingest directory
	f        *os.File // dir/data, nil once the Writer has ended
	h        hash.Hash
	alg      string
	expected string // "" when unknown
	size     int64  // UnknownSize when unknown
	offset   int64
	started  time.Time
	err      error // sticky: a Write went past the expected size
}

// Writer opens the ingest for ref, which names one in-progress write (a
// pull uses e.g. the descriptor's digest or the registry URL). expected is
// the digest the bytes must have ("" when unknown: the blob is then hashed
// with sha256 and stored under whatever digest results) and size their
// length (UnknownSize when unknown; 0 is an empty blob).
//
// If an ingest for ref exists with the same expected digest and size, the
// Writer resumes it: it re-hashes the bytes already there and Offset says
// where to continue. An ingest for ref with a different expectation is
// restarted from zero.
//
// Errors: ErrInvalidDigest for a malformed expected; ErrAlreadyExists when
// the expected blob is committed already (nothing to write); ErrLocked when
// another Writer holds the ingest.
func (s *Store) Writer(ctx context.Context, ref string, expected string, size int64) (*Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("content: ingest %q: %w", ref, err)
	}
	if ref == "" {
		return nil, errors.New("content: ingest ref is empty")
	}
	if size < UnknownSize {
		return nil, fmt.Errorf("content: ingest %q: invalid expected size %d", ref, size)
	}
	alg := canonical
	if expected != "" {
		d, err := parseDigest(expected)
		if err != nil {
			return nil, err
		}
		alg = d.alg
		if _, err := os.Lstat(s.blobPath(d)); err == nil {
			return nil, fmt.Errorf("content: ingest %q: blob %s: %w", ref, d, ErrAlreadyExists)
		}
	}
	w := &Writer{
		s:        s,
		ref:      ref,
		dir:      s.ingestDir(ref),
		h:        newHash(alg),
		alg:      alg,
		expected: expected,
		size:     size,
	}
	lock, err := lockIngest(w.dir, true)
	if err != nil {
		if errors.Is(err, errBusy) {
			return nil, fmt.Errorf("content: ingest %q: %w", ref, ErrLocked)
		}
		return nil, fmt.Errorf("content: ingest %q: lock: %w", ref, err)
	}
	w.lock = lock
	if err := w.open(ctx); err != nil {
		w.f = nil
		lock.Close()
		return nil, fmt.Errorf("content: ingest %q (%s): %w", ref, w.dir, err)
	}
	return w, nil
}

// open resumes the ingest's data or starts it afresh. It runs under the
// ingest lock. A fresh start that fails removes the ingest again.
func (w *Writer) open(ctx context.Context) error {
	data := filepath.Join(w.dir, dataFile)
	st, err := readStatus(w.dir)
	resume := err == nil && st.Ref == w.ref && st.Expected == w.expected && st.Size == w.size
	if resume {
		fi, err := os.Lstat(data)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			resume = false
		case err != nil:
			return err
		case !fi.Mode().IsRegular(), fi.Mode().Perm()&0o200 == 0:
			// Read-only data: a commit was interrupted after the link,
			// so this file may be a committed blob. Never write to it.
			resume = false
		case w.size != UnknownSize && fi.Size() > w.size:
			resume = false
		}
	}
	if resume {
		f, err := os.OpenFile(data, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(w.h, ctxReader{ctx, f}, make([]byte, 1<<20))
		if err != nil {
			f.Close()
			return fmt.Errorf("resume: re-hash %s: %w", data, err)
		}
		w.f, w.offset, w.started = f, n, st.StartedAt
		return nil
	}

	// Start afresh. Unlink (never truncate) old data: it may be a blob.
	if err := os.Remove(data); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	w.started = time.Now().UTC()
	err = writeStatus(w.dir, w.status())
	var f *os.File
	if err == nil {
		f, err = os.OpenFile(data, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	}
	if err != nil {
		if rerr := os.RemoveAll(w.dir); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return err
	}
	w.f = f
	return nil
}

func (w *Writer) status() ingestStatus {
	return ingestStatus{
		Ref:       w.ref,
		Expected:  w.expected,
		Size:      w.size,
		Offset:    w.offset,
		StartedAt: w.started,
	}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// Ref is the ingest's ref.
func (w *Writer) Ref() string { return w.ref }

// Offset is the number of bytes in the ingest: where the next Write goes.
// After a resume, the source must continue from here.
func (w *Writer) Offset() int64 { return w.offset }

// Written returns a reader of the bytes already in the ingest (the first
// Offset bytes: after a resume, what an earlier Writer received), so that a
// consumer of the whole stream (an unpacker) can read them before the rest
// arrives. Read it fully before the next Write; it reads the ingest's own
// file and ends when the Writer does.
func (w *Writer) Written() (io.Reader, error) {
	if w.f == nil {
		return nil, w.ended()
	}
	return io.NewSectionReader(w.f, 0, w.offset), nil
}

// Digest is the digest of the bytes written so far; after a successful
// Commit, the blob's digest.
func (w *Writer) Digest() string { return sumDigest(w.alg, w.h) }

func (w *Writer) ended() error {
	return fmt.Errorf("content: ingest %q: %w", w.ref, os.ErrClosed)
}

// Write appends p to the ingest. A write that would take the ingest past
// the expected size writes nothing and fails with ErrSizeMismatch, and so
// will Commit. Other errors (ENOSPC, say) name the ingest; the bytes that
// were written count, Offset says how many, and the Writer stays usable.
func (w *Writer) Write(p []byte) (int, error) {
	if w.f == nil {
		return 0, w.ended()
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.size != UnknownSize && int64(len(p)) > w.size-w.offset {
		w.err = fmt.Errorf("content: ingest %q: %w: writing %d bytes at offset %d goes past the expected size %d of %s",
			w.ref, ErrSizeMismatch, len(p), w.offset, w.size, w.want())
		return 0, w.err
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.offset += int64(n)
	if err != nil {
		return n, fmt.Errorf("content: ingest %q: %w", w.ref, err)
	}
	return n, nil
}

func (w *Writer) want() string {
	if w.expected == "" {
		return "the blob"
	}
	return w.expected
}

// Commit verifies the bytes written against the expected size and digest
// and publishes the blob. On a mismatch it removes the ingest and returns
// an error wrapping ErrSizeMismatch or ErrDigestMismatch that names the
// expected and actual size and digest. If the blob is committed already
// (by another Writer, say) it removes the ingest and returns an error
// wrapping ErrAlreadyExists. In all these cases, and on success, the Writer
// has ended.
//
// Commit fails and leaves the Writer open, to retry, Close or Abort, when
// ctx is done or the blob cannot be linked in. When fsync fails the bytes
// cannot be trusted: the ingest is removed.
func (w *Writer) Commit(ctx context.Context) error {
	if w.f == nil {
		return w.ended()
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("content: commit %q: %w", w.ref, err)
	}
	if w.err != nil {
		w.discard()
		return fmt.Errorf("content: commit %q: %w", w.ref, w.err)
	}
	actual := sumDigest(w.alg, w.h)
	if w.size != UnknownSize && w.offset != w.size {
		w.discard()
		return fmt.Errorf("content: commit %q: %w: expected %d bytes of %s, got %d bytes of %s",
			w.ref, ErrSizeMismatch, w.size, w.want(), w.offset, actual)
	}
	if w.expected != "" && actual != w.expected {
		w.discard()
		return fmt.Errorf("content: commit %q: %w: expected %s, got %s (%d bytes)",
			w.ref, ErrDigestMismatch, w.expected, actual, w.offset)
	}
	d, err := parseDigest(actual)
	if err != nil {
		return err // cannot happen: we formatted it
	}

	// Read-only first, so the blob is born read-only; then durable; then
	// visible. Link, unlike rename, never replaces an existing blob, so
	// concurrent commits of one digest yield one file and one winner.
	if err := w.f.Chmod(0o444); err != nil {
		return fmt.Errorf("content: commit %q: %w", w.ref, err)
	}
	if err := w.f.Sync(); err != nil {
		w.discard()
		return fmt.Errorf("content: commit %q: fsync %s: %w", w.ref, w.f.Name(), err)
	}
	target := w.s.blobPath(d)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		w.f.Chmod(0o644)
		return fmt.Errorf("content: commit %q: %w", w.ref, err)
	}
	if err := os.Link(w.f.Name(), target); err != nil {
		if errors.Is(err, fs.ErrExist) {
			w.discard()
			return fmt.Errorf("content: commit %q: blob %s: %w", w.ref, d, ErrAlreadyExists)
		}
		// Writable again, so that the ingest can be resumed.
		w.f.Chmod(0o644)
		return fmt.Errorf("content: commit %q: %w", w.ref, err)
	}
	serr := syncDir(filepath.Dir(target))
	w.discard()
	if serr != nil {
		// The blob is complete and visible; only the durability of its
		// name is in doubt. A retry gets ErrAlreadyExists.
		return fmt.Errorf("content: commit %q: blob %s linked, but fsync of %s failed: %w",
			w.ref, d, filepath.Dir(target), serr)
	}
	return nil
}

// Close ends the Writer and keeps the ingest, so that a later Writer for
// the same ref resumes it. Closing an ended Writer does nothing.
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := writeStatus(w.dir, w.status())
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	w.lock.Close()
	if err != nil {
		return fmt.Errorf("content: close ingest %q: %w", w.ref, err)
	}
	return nil
}

// Abort ends the Writer and removes its ingest. Aborting an ended Writer
// does nothing.
func (w *Writer) Abort() error {
	if w.f == nil {
		return nil
	}
	if err := w.discard(); err != nil {
		return fmt.Errorf("content: abort ingest %q: %w", w.ref, err)
	}
	return nil
}

// discard ends the Writer and removes the ingest while still holding its
// lock, then unlocks.
func (w *Writer) discard() error {
	w.f.Close()
	w.f = nil
	err := os.RemoveAll(w.dir)
	w.lock.Close()
	return err
}
