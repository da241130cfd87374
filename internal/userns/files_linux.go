package userns

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Files are the subordinate ID files berth reads (and, for its own
// entry, writes).
type Files struct {
	UID, GID string
}

// SystemFiles are the host's: /etc/subuid and /etc/subgid.
var SystemFiles = Files{UID: "/etc/subuid", GID: "/etc/subgid"}

// Pool is what the berth user may hand out: its ranges of host uids and
// of host gids.
type Pool struct {
	UIDs, GIDs []Range
	// Added is the line berth wrote for itself (both files got it), ""
	// when both had entries already.
	Added string
}

// owners are the names an entry of berth's may carry: "berth" and, when
// the host has such a user, its uid.
func owners() []string {
	names := []string{User}
	if u, err := user.Lookup(User); err == nil {
		names = append(names, u.Uid)
	}
	return names
}

// Read returns the berth user's ranges in both files; a missing file
// has none.
func (f Files) Read() (Pool, error) {
	var p Pool
	for _, side := range []struct {
		path string
		out  *[]Range
	}{{f.UID, &p.UIDs}, {f.GID, &p.GIDs}} {
		data, err := os.ReadFile(side.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Pool{}, err
		}
		*side.out = Owned(ParseSubIDs(data), owners()...)
	}
	return p, nil
}

// Ensure returns the berth user's ranges, first adding an entry of
// EntrySize IDs to each file that has none, as dockerd does for its
// dockremap user: a block that overlaps no entry of either file, the
// same in both, written atomically (a new file renamed over the old,
// keeping its mode and owner) under shadow's own lock of the file
// (FILE.lock, as useradd and usermod take it), so that neither a second
// berth nor shadow's tools lose an update.
func (f Files) Ensure(ctx context.Context) (Pool, error) {
	p, err := f.Read()
	if err != nil || len(p.UIDs) > 0 && len(p.GIDs) > 0 {
		return p, err
	}
	unlockU, err := shadowLock(ctx, f.UID)
	if err != nil {
		return Pool{}, err
	}
	defer unlockU()
	unlockG, err := shadowLock(ctx, f.GID)
	if err != nil {
		return Pool{}, err
	}
	defer unlockG()
	uidData, err := readOptional(f.UID)
	if err != nil {
		return Pool{}, err
	}
	gidData, err := readOptional(f.GID)
	if err != nil {
		return Pool{}, err
	}
	uidEntries, gidEntries := ParseSubIDs(uidData), ParseSubIDs(gidData)
	names := owners()
	p = Pool{UIDs: Owned(uidEntries, names...), GIDs: Owned(gidEntries, names...)}
	if len(p.UIDs) > 0 && len(p.GIDs) > 0 {
		return p, nil // another process added them meanwhile
	}
	r, err := FreeRange(EntrySize, uidEntries, gidEntries)
	if err != nil {
		return Pool{}, fmt.Errorf("add a %s entry to %s and %s: %w", User, f.UID, f.GID, err)
	}
	e := Entry{Owner: User, Range: r}
	if len(p.UIDs) == 0 {
		if err := appendLine(f.UID, uidData, e.Line()); err != nil {
			return Pool{}, err
		}
		p.UIDs = []Range{r}
	}
	if len(p.GIDs) == 0 {
		if err := appendLine(f.GID, gidData, e.Line()); err != nil {
			return Pool{}, err
		}
		p.GIDs = []Range{r}
	}
	p.Added = e.Line()
	return p, nil
}

func readOptional(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// appendLine replaces path with old plus line, atomically: a temporary
// file in the same directory, synced, renamed over it. A new file is
// 0644 root:root, as shadow makes it; an existing one keeps its mode and
// owner.
func appendLine(path string, old []byte, line string) error {
	mode, uid, gid := os.FileMode(0o644), 0, 0
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
		if s, ok := st.Sys().(*unix.Stat_t); ok {
			uid, gid = int(s.Uid), int(s.Gid)
		}
	}
	data := append([]byte(nil), old...)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	data = append(data, line+"\n"...)
	tmp := path + "+" // shadow's name for the file it is writing
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chown(uid, gid)
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// shadowLock takes shadow's lock of path (commonio_lock: a file
// PATH.<pid> holding the pid, hard-linked to PATH.lock; a lock whose
// process is gone is stale and removed), waiting up to 10 s or until ctx
// ends.
func shadowLock(ctx context.Context, path string) (func(), error) {
	lock := path + ".lock"
	// shadow names it PATH.<pid>; a suffix of our own keeps two calls of
	// one process apart.
	mine := fmt.Sprintf("%s.%d.%d", path, os.Getpid(), time.Now().UnixNano())
	if err := os.WriteFile(mine, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	defer os.Remove(mine)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := os.Link(mine, lock)
		if err == nil {
			return func() { os.Remove(lock) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if data, rerr := os.ReadFile(lock); rerr == nil {
			pid, perr := strconv.Atoi(strings.TrimSpace(string(data)))
			if perr == nil && pid > 0 && unix.Kill(pid, 0) == unix.ESRCH {
				os.Remove(lock) // its holder is gone
				continue
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("lock %s: %s is held by another process (useradd, usermod, another berth); if none runs, remove it", path, lock)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
