package content

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

const (
	statusFile = "status.json"
	dataFile   = "data"
)

// errBusy is what tryFlock returns when the lock is held elsewhere.
var errBusy = errors.New("lock busy")

// IngestStatus describes an in-progress or abandoned write.
type IngestStatus struct {
	Ref       string    // the ref the Writer was opened with
	Expected  string    // expected digest; "" when the writer did not know it
	Size      int64     // expected size; -1 when the writer did not know it
	Offset    int64     // bytes received so far (the size of the data file)
	StartedAt time.Time // when the ingest was started (or last restarted)
	UpdatedAt time.Time // when bytes were last written to it
}

// ingestStatus is status.json.
type ingestStatus struct {
	Ref       string    `json:"ref"`
	Expected  string    `json:"expected,omitempty"`
	Size      int64     `json:"size"`
	Offset    int64     `json:"offset"` // at the last clean Close; the data file is authoritative
	StartedAt time.Time `json:"startedAt"`
}

func (s *Store) ingestDir(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(s.ingestRoot(), hex.EncodeToString(sum[:]))
}

func readStatus(dir string) (ingestStatus, error) {
	var st ingestStatus
	b, err := os.ReadFile(filepath.Join(dir, statusFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, statusFile), err)
	}
	return st, nil
}

// writeStatus replaces status.json atomically (temporary file, rename). It
// is not fsynced: after a power loss a status that is missing or unreadable
// only costs a restart of the ingest.
func writeStatus(dir string, st ingestStatus) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, statusFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, statusFile)); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// lockIngest opens and flocks an ingest directory, creating it first when
// create is set. It returns errBusy when another holder has it and
// fs.ErrNotExist when it does not exist (and create is unset).
//
// An ingest is removed by the holder of its lock, which unlocks only after
// the removal; so after locking, the directory is checked to still be the
// one at dir, and the whole dance is retried when it is not.
func lockIngest(dir string, create bool) (*os.File, error) {
	for {
		if create {
			if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return nil, err
			}
		}
		f, err := os.Open(dir)
		if err != nil {
			if create && errors.Is(err, fs.ErrNotExist) {
				continue // removed between Mkdir and Open
			}
			return nil, err
		}
		if err := tryFlock(f); err != nil {
			f.Close()
			return nil, err
		}
		held, err1 := f.Stat()
		now, err2 := os.Lstat(dir)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return f, nil
		}
		f.Close()
		if err1 != nil {
			return nil, err1
		}
		if !create {
			return nil, fs.ErrNotExist
		}
	}
}

// Ingests lists the ingests present, in order of ref. Ingests without a
// readable status (being created, or debris of a crash) are not listed;
// CleanIngests removes the latter.
func (s *Store) Ingests() ([]IngestStatus, error) {
	entries, err := os.ReadDir(s.ingestRoot())
	if err != nil {
		return nil, fmt.Errorf("content: list ingests: %w", err)
	}
	var out []IngestStatus
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(s.ingestRoot(), e.Name())
		st, err := readStatus(dir)
		if err != nil {
			continue
		}
		is := IngestStatus{
			Ref:       st.Ref,
			Expected:  st.Expected,
			Size:      st.Size,
			StartedAt: st.StartedAt,
		}
		if fi, err := os.Lstat(filepath.Join(dir, dataFile)); err == nil {
			is.Offset, is.UpdatedAt = fi.Size(), fi.ModTime()
		} else if fi, err := os.Lstat(filepath.Join(dir, statusFile)); err == nil {
			is.UpdatedAt = fi.ModTime()
		}
		out = append(out, is)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

// CleanIngests removes ingests that no Writer holds and whose last write is
// at least olderThan ago, and, whatever their age, unheld ingests that are
// debris of a crash: no readable status, or read-only data (a commit that
// was interrupted after publishing the blob). Held ingests are skipped; a
// Writer opened for one of them at the very moment it is examined gets
// ErrLocked. Errors for single ingests are joined; the others are still
// cleaned.
func (s *Store) CleanIngests(olderThan time.Duration) error {
	entries, err := os.ReadDir(s.ingestRoot())
	if err != nil {
		return fmt.Errorf("content: clean ingests: %w", err)
	}
	var errs []error
	now := time.Now()
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(s.ingestRoot(), e.Name())
		if err := cleanIngest(dir, now, olderThan); err != nil {
			errs = append(errs, fmt.Errorf("content: clean ingest %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

func cleanIngest(dir string, now time.Time, olderThan time.Duration) error {
	lock, err := lockIngest(dir, false)
	if err != nil {
		if errors.Is(err, errBusy) || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer lock.Close()

	debris := false
	if _, err := readStatus(dir); err != nil {
		debris = true
	}
	latest := time.Time{}
	if fi, err := lock.Stat(); err == nil {
		latest = fi.ModTime()
	}
	for _, name := range []string{statusFile, dataFile} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		if name == dataFile && fi.Mode().Perm()&0o200 == 0 {
			debris = true
		}
		if fi.ModTime().After(latest) {
			latest = fi.ModTime()
		}
	}
	if !debris && now.Sub(latest) < olderThan {
		return nil
	}
	return os.RemoveAll(dir)
}
