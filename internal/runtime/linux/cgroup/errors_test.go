//go:build linux

package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestErrorMessageNamesPathAndFile(t *testing.T) {
	dir := "/sys/fs/cgroup/memory/berth/x"
	file := filepath.Join(dir, "memory.limit_in_bytes")
	// The shape opencontainers/cgroups.WriteFile returns.
	lib := fmt.Errorf("failed to write %q: %w", "1", &os.PathError{Op: "write", Path: file, Err: unix.EINVAL})
	err := wrapError("set", "/berth/x", lib)

	const want = `cgroup /sys/fs/cgroup/memory/berth/x: set memory.limit_in_bytes: write "1": invalid argument`
	if err.Error() != want {
		t.Errorf("got  %q\nwant %q", err, want)
	}
	if !errors.Is(err, unix.EINVAL) {
		t.Error("errno not reachable through errors.Is")
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Path != dir || ce.File != "memory.limit_in_bytes" || ce.Op != "set" {
		t.Errorf("Error fields = %+v", ce)
	}
}

func TestErrorMessageVariants(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{
			name: "unquoted pid write (cgroups.WriteCgroupProc)",
			err:  fmt.Errorf("failed to write %v: %w", 42, &os.PathError{Op: "openat2", Path: "/sys/fs/cgroup/pids/berth/x/cgroup.procs", Err: unix.ENOENT}),
			want: `cgroup /sys/fs/cgroup/pids/berth/x: apply cgroup.procs: write 42: no such file or directory`,
		},
		{
			name: "mkdir names the directory",
			err:  &os.PathError{Op: "mkdir", Path: "/sys/fs/cgroup/cpu/berth/x", Err: unix.EACCES},
			want: `cgroup /sys/fs/cgroup/cpu/berth/x: apply: permission denied`,
		},
		{
			name: "missing directory on open is not taken for a file",
			err:  &os.PathError{Op: "open", Path: "/nonexistent-berth-test/berth/x", Err: unix.ENOENT},
			want: `cgroup /nonexistent-berth-test/berth/x: apply: no such file or directory`,
		},
		{
			name: "no path: the fallback names the cgroup",
			err:  errors.New("cannot set hugetlb limit: container could not join or create cgroup"),
			want: `cgroup /berth/x: apply: cannot set hugetlb limit: container could not join or create cgroup`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wrapError("apply", "/berth/x", tt.err).Error(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
	if wrapError("set", "x", nil) != nil {
		t.Error("wrapError(nil) != nil")
	}
	inner := &Error{Op: "set", Path: "/a", Err: unix.EBUSY}
	if got := wrapError("destroy", "/b", inner); got != inner {
		t.Errorf("wrapError re-wrapped an *Error: %v", got)
	}
}
