package linux

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/proc"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/linux/cgroup"
)

// Errors callers can test with errors.Is.
var (
	ErrNotExist      = runtime.ErrNotExist
	ErrExist         = errors.New("container already exists")
	ErrInvalidStatus = runtime.ErrInvalidStatus
	ErrInvalidID     = errors.New("invalid container id")
)

const (
	stateFile = "state.json"
	fifoName  = "exec.fifo"
)

// Status values of the runtime-spec state, plus paused (as runc reports).
const (
	StatusCreating = "creating"
	StatusCreated  = "created"
	StatusRunning  = "running"
	StatusStopped  = "stopped"
	StatusPaused   = "paused"
)

// State is what berth persists for a container in <root>/<id>/state.json.
type State struct {
	ID           string            `json:"id"`
	Bundle       string            `json:"bundle"`
	Rootfs       string            `json:"rootfs"`
	Pid          int               `json:"pid"`
	PidStartTime uint64            `json:"pid_start_time"`
	Created      time.Time         `json:"created"`
	Owner        string            `json:"owner"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	CgroupPaths  map[string]string `json:"cgroup_paths,omitempty"`
	SystemdCgrp  bool              `json:"systemd_cgroup,omitempty"`
	NoPivot      bool              `json:"no_pivot,omitempty"`
	// HostMountNS: the container shares the host's mount namespace; its
	// rootfs mounts are there and delete removes them.
	HostMountNS bool `json:"host_mount_ns,omitempty"`
	// Namespaces are the paths other processes join (exec): the init's
	// /proc/<pid>/ns entries, or the paths config.json named.
	Namespaces map[specs.LinuxNamespaceType]string `json:"namespaces,omitempty"`
	Spec       *specs.Spec                         `json:"spec"`
}

// Container is one container's directory under the runtime root.
type Container struct {
	root string
	dir  string
	ID   string
	*State
	// Set by the create that made this value (run keeps it to delete):
	// the cgroup manager it made; and the identity of the state.json this
	// value last wrote, so relock can tell the file is still that one.
	mgr       cgroup.Manager
	stateFile unix.Stat_t
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)

// CheckID refuses ids that are not safe as a file name.
func CheckID(id string) error {
	if len(id) > 1024 || !validID.MatchString(id) {
		return fmt.Errorf("%w %q: use letters, digits and _.+- , starting with a letter or digit", ErrInvalidID, id)
	}
	return nil
}

// Load reads a container's state without locking.
func Load(root, id string) (*Container, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, id)
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("container %s: %w", id, ErrNotExist)
		}
		return nil, fmt.Errorf("container %s: read state: %w", id, err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("container %s: state %s is corrupt: %w; remove the directory to forget the container", id, filepath.Join(dir, stateFile), err)
	}
	return &Container{root: root, dir: dir, ID: id, State: &st}, nil
}

// makeLockedDir makes <root>/<id> already locked: the directory is made and
// locked under a temporary name and renamed into place, so no other command
// ever sees it unlocked and mistakes it for an abandoned create.
func makeLockedDir(root, id string) (*lock, error) {
	dir := filepath.Join(root, id)
	tmp, err := os.MkdirTemp(root, ".creating-"+id+"-")
	if err != nil {
		return nil, fmt.Errorf("create container directory in %s: %w", root, err)
	}
	os.Chmod(tmp, 0o711)
	l, err := lockDir(tmp)
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
		if err == nil {
			return l, nil
		}
		if err == unix.EEXIST && attempt == 0 {
			// Perhaps the leftover of a create that died: undo it, once.
			cleanAbandoned(dir)
			continue
		}
		l.Unlock()
		os.Remove(tmp)
		if err == unix.EEXIST {
			return nil, fmt.Errorf("container %s: %w", id, ErrExist)
		}
		return nil, fmt.Errorf("create container directory %s: %w", dir, err)
	}
}

// List returns the ids of all containers under root, sorted.
func List(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), ".creating-") {
			// A create that died before renaming its directory into place;
			// a young one may be live but not locked yet (mkdir, then lock).
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Minute {
				cleanAbandoned(filepath.Join(root, e.Name()))
			}
			continue
		}
		if !e.IsDir() || CheckID(e.Name()) != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, e.Name(), stateFile)); err != nil {
			cleanAbandoned(filepath.Join(root, e.Name()))
			continue
		}
		ids = append(ids, e.Name())
	}
	sort.Strings(ids)
	return ids, nil
}

// cleanAbandoned removes a container directory without state.json whose
// creator is gone (its lock is free).
func cleanAbandoned(dir string) {
	l, err := tryLock(dir)
	if err != nil || l == nil {
		return
	}
	defer l.Unlock()
	if _, err := os.Stat(filepath.Join(dir, stateFile)); os.IsNotExist(err) {
		undoCreate(dir)
		os.RemoveAll(dir)
	}
}

// creatingFile records, before anything outside the container directory
// exists, what a create is making, so that if it dies (kill -9) the next
// command can undo it: the cgroup (and the processes in it) and, without a
// mount namespace, the rootfs mounts.
const creatingFile = "creating.json"

type creatingRecord struct {
	CgroupPaths map[string]string `json:"cgroup_paths,omitempty"`
	Rootfs      string            `json:"rootfs,omitempty"`
	HostMountNS bool              `json:"host_mount_ns,omitempty"`
}

func recordCreating(dir string, rec creatingRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, creatingFile), data, 0o600)
}

// undoCreate removes what a dead create left outside its directory.
func undoCreate(dir string) {
	data, err := os.ReadFile(filepath.Join(dir, creatingFile))
	if err != nil {
		return
	}
	var rec creatingRecord
	if json.Unmarshal(data, &rec) != nil {
		return
	}
	if len(rec.CgroupPaths) > 0 {
		if mgr, err := cgroup.Load(rec.CgroupPaths, false); err == nil {
			if pids, err := mgr.Pids(); err == nil && len(pids) > 0 {
				mgr.Thaw()
				for _, pid := range pids {
					unix.Kill(pid, unix.SIGKILL)
				}
				waitGone(mgr, 2*time.Second)
			}
			mgr.Destroy()
		}
	}
	if rec.HostMountNS && rec.Rootfs != "" {
		unix.Unmount(rec.Rootfs, unix.MNT_DETACH)
	}
}

func (c *Container) save() error {
	data, err := json.Marshal(c.State)
	if err != nil {
		return err
	}
	return c.writeState(data)
}

// writeState replaces state.json with data, c.State encoded, and
// remembers which file that is (relock).
func (c *Container) writeState(data []byte) error {
	path := filepath.Join(c.dir, stateFile)
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return err
	}
	unix.Stat(path, &c.stateFile)
	return nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_CLOEXEC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Status derives the container's status from the kernel, never from a
// stored field: the init's pid (checked against its start time, so a reused
// pid is not mistaken for it), the exec fifo and the freezer.
func (c *Container) Status() string {
	if c.Pid <= 0 || !c.initAlive() {
		return StatusStopped
	}
	if _, err := os.Lstat(filepath.Join(c.dir, fifoName)); err == nil {
		return StatusCreated
	}
	if mgr, err := c.cgroup(); err == nil {
		if paused, err := mgr.Paused(); err == nil && paused {
			return StatusPaused
		}
	}
	return StatusRunning
}

func (c *Container) initAlive() bool {
	start, state, err := procStat(c.Pid)
	if err != nil {
		return false
	}
	return start == c.PidStartTime && state != 'Z' && state != 'X'
}

func procStat(pid int) (uint64, byte, error) { return proc.Stat(pid) }

// OCIState is the runtime-spec state document, with the fields runc adds
// that engines read (rootfs, created, owner).
type OCIState struct {
	specs.State
	Rootfs  string    `json:"rootfs"`
	Created time.Time `json:"created"`
	Owner   string    `json:"owner"`
}

// OCIState returns the state as `state` prints it and hooks receive it.
func (c *Container) OCIState() *OCIState {
	status := c.Status()
	pid := c.Pid
	if status == StatusStopped {
		pid = 0
	}
	return &OCIState{
		State: specs.State{
			Version:     specs.Version,
			ID:          c.ID,
			Status:      specs.ContainerState(status),
			Pid:         pid,
			Bundle:      c.Bundle,
			Annotations: c.Annotations,
		},
		Rootfs:  c.Rootfs,
		Created: c.Created,
		Owner:   c.Owner,
	}
}

// lock is an exclusive flock on a container directory.
type lock struct{ f *os.File }

func lockDir(dir string) (*lock, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return &lock{f}, nil
}

// relock takes c's lock again, for a caller that made c with create and
// has held no lock since (run, to delete it): while the state.json create
// wrote is still there, unchanged, c is what Load would read, and the
// read is spared; otherwise this is LoadLocked.
func relock(c *Container) (*Container, func(), error) {
	if c.stateFile.Ino == 0 {
		return LoadLocked(c.root, c.ID)
	}
	l, err := lockDir(c.dir)
	if err != nil {
		return LoadLocked(c.root, c.ID)
	}
	var st unix.Stat_t
	if unix.Stat(filepath.Join(c.dir, stateFile), &st) == nil && st.Dev == c.stateFile.Dev && st.Ino == c.stateFile.Ino && st.Ctim == c.stateFile.Ctim && st.Size == c.stateFile.Size {
		return c, l.Unlock, nil
	}
	l.Unlock()
	return LoadLocked(c.root, c.ID)
}

// tryLock returns nil, nil when someone else holds the lock.
func tryLock(dir string) (*lock, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if err == unix.EWOULDBLOCK {
			return nil, nil
		}
		return nil, err
	}
	return &lock{f}, nil
}

func (l *lock) Unlock() {
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
}

// Lock loads a container and takes its lock; the caller must Unlock.
func LoadLocked(root, id string) (*Container, func(), error) {
	if err := CheckID(id); err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(root, id)
	l, err := lockDir(dir)
	if err != nil {
		if os.IsNotExist(errors.Unwrap(err)) || os.IsNotExist(err) {
			return nil, nil, fmt.Errorf("container %s: %w", id, ErrNotExist)
		}
		return nil, nil, err
	}
	c, err := Load(root, id)
	if err != nil {
		if errors.Is(err, ErrNotExist) {
			// A directory whose create died: we hold its lock, so undo it.
			undoCreate(dir)
			os.RemoveAll(dir)
		}
		l.Unlock()
		return nil, nil, err
	}
	return c, l.Unlock, nil
}
