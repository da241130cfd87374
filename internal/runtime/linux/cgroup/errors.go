//go:build linux

package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrSystemdUnavailable is returned by New and Load when the systemd cgroup
// driver is requested but systemd is not running as PID 1 on this host
// (there is no /run/systemd/system directory).
var ErrSystemdUnavailable = errors.New("systemd cgroup driver is not supported: systemd is not running (no /run/systemd/system)")

// ErrUnifiedNeedsV2 is returned when linux.resources.unified is non-empty on a
// host whose controllers live on cgroup v1 (pure v1 or hybrid).
var ErrUnifiedNeedsV2 = errors.New("linux.resources.unified requires a cgroup v2 (unified) host")

// Error describes a failed cgroup operation. It always names the cgroup
// directory (Path) and, when the failure is tied to one cgroup interface
// file, that file (File). Err is the underlying error (errno and all), so
// errors.Is(err, unix.EBUSY) and friends work through it.
//
// The message has the shape
//
//	cgroup /sys/fs/cgroup/memory/berth/x: set memory.limit_in_bytes: write "1": invalid argument
type Error struct {
	Op   string // apply, set, freeze, thaw, paused, pids, stats, destroy, oom-kill-count, load, new
	Path string // cgroup directory (or the cgroup's path below the mount when no single directory is known)
	File string // cgroup interface file inside Path, if known
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("cgroup ")
	b.WriteString(e.Path)
	b.WriteString(": ")
	b.WriteString(e.Op)
	if e.File != "" {
		b.WriteString(" ")
		b.WriteString(e.File)
	}
	b.WriteString(": ")
	b.WriteString(e.detail())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// detail renders Err without repeating the path that Error already names,
// and turns the library's `failed to write "V": ` into `write "V": `.
func (e *Error) detail() string {
	if e.Err == nil {
		return "unknown error"
	}
	msg := e.Err.Error()
	var pe *os.PathError
	if errors.As(e.Err, &pe) && pe.Err != nil {
		msg = strings.Replace(msg, pe.Error(), pe.Err.Error(), 1)
	}
	if rest, ok := strings.CutPrefix(msg, "failed to write "); ok {
		val := ""
		if q, err := strconv.QuotedPrefix(rest); err == nil {
			val = q
		} else if i := strings.Index(rest, ": "); i >= 0 {
			val = rest[:i]
		}
		if val != "" {
			if tail, ok := strings.CutPrefix(rest[len(val):], ": "); ok {
				msg = "write " + val + ": " + tail
			}
		}
	}
	return msg
}

// wrapError builds an *Error for op. fallback names the cgroup when the
// underlying error carries no path of its own. A nil err gives nil, and an
// err that already is an *Error is returned as is.
func wrapError(op, fallback string, err error) error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	e := &Error{Op: op, Path: fallback, Err: err}
	var pe *os.PathError
	if errors.As(err, &pe) && filepath.IsAbs(pe.Path) {
		if isDirOp(pe) {
			e.Path = filepath.Clean(pe.Path)
		} else {
			e.Path, e.File = filepath.Split(filepath.Clean(pe.Path))
			e.Path = filepath.Clean(e.Path)
		}
	}
	return e
}

// isDirOp reports whether the PathError is about a cgroup directory rather
// than an interface file inside one.
func isDirOp(pe *os.PathError) bool {
	switch pe.Op {
	case "mkdir", "rmdir", "readdirent":
		return true
	}
	if fi, err := os.Lstat(pe.Path); err == nil {
		return fi.IsDir()
	}
	return !looksLikeInterfaceFile(filepath.Base(pe.Path))
}

// interfaceFilePrefixes are the prefixes of cgroup v1/v2 interface files.
var interfaceFilePrefixes = []string{
	"cgroup.", "memory.", "cpu.", "cpuset.", "cpuacct.", "pids.", "blkio.", "io.",
	"devices.", "freezer.", "hugetlb.", "net_cls.", "net_prio.", "rdma.", "misc.",
}

func looksLikeInterfaceFile(name string) bool {
	switch name {
	case "tasks", "notify_on_release", "release_agent":
		return true
	}
	for _, p := range interfaceFilePrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
