//go:build linux

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/log"
	"github.com/berth-dev/berth/internal/network"
	"golang.org/x/sys/unix"
)

// Deferred DELs: the CNI DELs of a container whose record goes away with
// its run (removed, or AutoRemove at its exit), run after the caller's
// answer in a long-lived engine (berth serve).
//
// By the time such a DEL would run, the endpoint is already out of
// service: its host end is down (network.Manager.Unplug) and the
// namespace unpinned, so nothing can reach the container's address and
// the container cannot reach anything. What the DEL still does is give
// back what the plugins hold by container ID: the address's lease (and
// libcni's cache entry). The two plugin processes that takes (~20-30 ms
// here, most of a `docker run --rm`'s way from the exit to its answer)
// need not be waited for: nobody can observe the lease of an ID that is
// never used again (IDs are random; a record that goes away takes its ID
// with it).
//
// Which endpoints: those Unplug took out of service (berth's own bridge
// networks, without --mac-address) and that publish no ports. portmap's
// rules are not deferred: a container started meanwhile on the same host
// port would have its traffic caught by the earlier rule until the DEL.
// CNI configuration files' networks (the CRI's) never are.
//
// Durability: the DELs are journaled before the record forgets the
// endpoints, one file per container under <root>/netdel (JSON: the
// container's ID and its endpoints), written whole (temp file, fsync,
// rename) and removed once every DEL of it succeeded. A DEL that fails,
// or a serve killed before it ran one, leaves the file: serve's next
// start runs it (SweepDeferredDels), and so do a network's removal (for
// that network, before the network goes: its configuration is the DEL's)
// and a reset. A start of a container with a journal of its own (a
// removal that failed half-way left the record) runs it first, since a
// late DEL would release the new run's lease. One process runs a file at
// a time (flock on the file); a file removed meanwhile is skipped.
//
// Lock order: a journal file's flock is taken with no other engine lock
// held but, on a start, the container's own (above the file's); the
// network manager's lock is taken inside it by the DELs.

// netdelDir is where the deferred DELs are journaled.
func (e *Engine) netdelDir() string { return filepath.Join(e.opts.Root, "netdel") }

func (e *Engine) netdelFile(id string) string { return filepath.Join(e.netdelDir(), id+".json") }

// deferredDel is one container's journaled DELs.
type deferredDel struct {
	Container string             `json:"container"`
	Endpoints []network.Endpoint `json:"endpoints"`
}

// deferrable says whether ep's DEL may be deferred (see above); m has
// taken it out of service already (Unplug).
func deferrable(ep network.Endpoint) bool {
	return ep.CNI == nil && ep.RequestMAC == "" && len(ep.Ports) == 0
}

// deferDels journals the DELs of id's endpoints eps and runs them in the
// background. false: they could not be journaled; the caller runs them.
func (e *Engine) deferDels(ctx context.Context, id string, eps []network.Endpoint) bool {
	if len(eps) == 0 {
		return true
	}
	if _, err := os.Lstat(e.netdelFile(id)); !errors.Is(err, os.ErrNotExist) {
		return false // one journal per container: run these now
	}
	data, err := json.Marshal(deferredDel{Container: id, Endpoints: eps})
	if err != nil {
		return false
	}
	if err := writeFileAtomicSync(e.netdelFile(id), data, 0o600, true); err != nil {
		log.From(ctx).Warn("journaling a container's network DELs; running them now", "container", id, "err", err)
		return false
	}
	e.netdel.Go(func() {
		stopAtForTest("netdel-journaled")
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), delTimeout)
		defer cancel()
		if err := e.runDeferredDel(ctx, e.netdelFile(id), ""); err != nil {
			log.From(ctx).Warn("a container's deferred network DELs failed; serve's next start retries them", "container", id, "err", err)
		}
	})
	return true
}

// delTimeout bounds a journal's DELs, as a teardown's own (a plugin that
// hangs must not hold the journal, and a start behind it, for ever).
const delTimeout = 2 * time.Minute

// runDeferredDel runs the DELs journaled in path under its flock (waiting,
// as long as ctx allows, for another process's run of it), and removes the
// file once all succeeded. With only, just the file's endpoints on that
// network run, and the file is rewritten with the rest. A file gone is no
// error.
func (e *Engine) runDeferredDel(ctx context.Context, path, only string) error {
	f, err := lockJournal(ctx, path)
	if f == nil || err != nil {
		return err
	}
	defer f.Close()
	d, err := readJournal(f, "deferred network DELs")
	if err != nil {
		return err
	}
	run, keep := d.Endpoints, []network.Endpoint(nil)
	if only != "" {
		run, keep = nil, nil
		for _, ep := range d.Endpoints {
			if ep.Network == only {
				run = append(run, ep)
			} else {
				keep = append(keep, ep)
			}
		}
		if len(run) == 0 {
			return nil
		}
	}
	m, err := e.networks()
	if err != nil {
		return err
	}
	failed, derr := detachFrom(ctx, m, d.Container, "", run)
	keep = append(keep, failed...)
	if len(keep) == 0 {
		return errors.Join(derr, removeIfExists(path))
	}
	if len(keep) != len(d.Endpoints) {
		// In place, under the flock: a rename would hand a waiter of
		// the old file a file no longer at the path.
		d.Endpoints = keep
		if data, err := json.Marshal(d); err == nil {
			derr = errors.Join(derr, rewriteLocked(f, data))
		}
	}
	return derr
}

// readJournal reads a journal (what: its kind, for the error) from f,
// under its flock. One unreadable is not ours to guess at: it is left for
// an operator, and said.
func readJournal(f *os.File, what string) (deferredDel, error) {
	var d deferredDel
	data, err := io.ReadAll(f)
	if err == nil {
		err = json.Unmarshal(data, &d)
	}
	if err != nil || d.Container == "" {
		return d, fmt.Errorf("%s %s: unreadable (%v): remove it once its addresses are released", what, f.Name(), err)
	}
	return d, nil
}

// lockJournal opens the journal at path and takes its flock, waiting
// while ctx allows; nil, nil when the file is gone (run and removed by
// another meanwhile).
func lockJournal(ctx context.Context, path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if !errors.Is(err, unix.EWOULDBLOCK) {
				break
			}
			select {
			case <-ctx.Done():
				f.Close()
				return nil, fmt.Errorf("deferred network DELs %s: another process runs them: %w", path, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// Removed (all its DELs ran) while we waited: our descriptor is
		// of the unlinked file. A path that names another file now is
		// a new journal: that one is the one to run.
		var st, cur unix.Stat_t
		if unix.Fstat(int(f.Fd()), &st) == nil && st.Nlink > 0 && unix.Stat(path, &cur) == nil && cur.Ino == st.Ino {
			return f, nil
		}
		f.Close()
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
}

// rewriteLocked replaces the content of f, a journal under its flock.
func rewriteLocked(f *os.File, data []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	return f.Sync()
}

// isFullID: a container's whole ID, the only names a journal has.
func isFullID(s string) bool { return len(s) == 64 && isHexID(s) }

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// runDeferredDels runs every journal (only: their endpoints on that
// network), waiting for those another process runs. Used where what the
// DELs release must be released now: serve's start, a network's removal,
// a reset.
func (e *Engine) runDeferredDels(ctx context.Context, only string) error {
	journals, temps, err := journalsIn(e.netdelDir())
	if err != nil {
		return err
	}
	for _, tmp := range temps {
		os.Remove(tmp) // a write cut short
	}
	var errs []error
	for _, path := range journals {
		errs = append(errs, e.runDeferredDel(ctx, path, only))
	}
	return errors.Join(errs...)
}

// journalsIn lists the journals in dir (<container ID>.json) and the temp
// files of their writes (<ID>.json.tmp); a directory missing holds none.
func journalsIn(dir string) (journals, temps []string, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, ent := range entries {
		name := ent.Name()
		switch {
		case strings.HasSuffix(name, ".json.tmp"):
			temps = append(temps, filepath.Join(dir, name))
		case strings.HasSuffix(name, ".json") && isFullID(strings.TrimSuffix(name, ".json")):
			journals = append(journals, filepath.Join(dir, name))
		}
	}
	return journals, temps, nil
}

// SweepDeferredDels runs the DELs left journaled by an earlier serve (or
// a failed DEL), and releases the warm pod networks of serves that are
// gone (netwarm.go): serve calls it at its start.
func (e *Engine) SweepDeferredDels(ctx context.Context) error {
	if e.netdel != nil {
		e.netdel.add() // Close waits for it too
		defer e.netdel.done()
	}
	return errors.Join(e.sweepWarm(ctx), e.runDeferredDels(ctx, ""))
}

// finishDeferredDels runs container id's own journal before its start
// attaches it again (see above). Nearly always a failed stat.
func (e *Engine) finishDeferredDels(ctx context.Context, id string) error {
	if _, err := os.Stat(e.netdelFile(id)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := e.runDeferredDel(ctx, e.netdelFile(id), ""); err != nil {
		return fmt.Errorf("container %s: the network DELs of its last run: %w", ShortID(id), err)
	}
	if _, err := os.Stat(e.netdelFile(id)); err == nil {
		return fmt.Errorf("container %s: the network DELs of its last run are still pending: %w", ShortID(id), ErrInvalidState)
	}
	return nil
}

// netdelRuns tracks the background runs, which Close waits for (a
// bounded while: what is cut short stays journaled). Runs may begin while
// Close waits (an exit recorded meanwhile), which a WaitGroup forbids.
type netdelRuns struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n falls to 0
}

func (r *netdelRuns) add() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		r.idle = make(chan struct{})
	}
	r.n++
}

func (r *netdelRuns) done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n--; r.n == 0 {
		close(r.idle)
	}
}

// Go runs f in the background, counted.
func (r *netdelRuns) Go(f func()) {
	r.add()
	go func() {
		defer r.done()
		f()
	}()
}

// wait waits at most d for the runs in progress to end.
func (r *netdelRuns) wait(d time.Duration) {
	r.mu.Lock()
	if r.n == 0 {
		r.mu.Unlock()
		return
	}
	idle := r.idle
	r.mu.Unlock()
	select {
	case <-idle:
	case <-time.After(d):
	}
}

// splitDeferrable splits eps into those whose DELs may be deferred and
// the rest, keeping order.
func splitDeferrable(eps []network.Endpoint) (later, now []network.Endpoint) {
	for _, ep := range eps {
		if deferrable(ep) {
			later = append(later, ep)
		} else {
			now = append(now, ep)
		}
	}
	return later, now
}
