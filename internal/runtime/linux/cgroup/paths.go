//go:build linux

package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
)

// DefaultParent is the cgroup (below each mount root) under which containers
// without a linux.cgroupsPath are placed: "/berth/<id>".
const DefaultParent = "/berth"

// DefaultSystemdSlice and DefaultSystemdPrefix make up the systemd unit used
// for a container without linux.cgroupsPath when the systemd driver is
// selected: "system.slice:berth:<id>", i.e. unit berth-<id>.scope in
// system.slice.
const (
	DefaultSystemdSlice  = "system.slice"
	DefaultSystemdPrefix = "berth"
)

// hybridUnifiedMount is where the cgroup2 hierarchy lives on hybrid hosts.
const hybridUnifiedMount = "/sys/fs/cgroup/unified"

// fsPath returns the cleaned cgroup path the cgroupfs drivers use for a
// container: "/berth/<id>" for an empty cgroupsPath, the cleaned path for an
// absolute one (taken relative to each cgroup mount root) and the cleaned
// relative path for a relative one (taken relative to the runtime's own
// cgroup by the drivers).
//
// Paths with ".." components or NUL bytes, and paths that resolve to a
// mount root ("/", ".") are rejected: they would either escape the intended
// hierarchy or put the container in a cgroup the runtime must never remove.
// Without the systemd driver a systemd-style "slice:prefix:name" value is
// just a (relative) cgroup name, as in runc.
func fsPath(id, cgroupsPath string) (string, error) {
	if cgroupsPath == "" {
		if err := validateID(id); err != nil {
			return "", err
		}
		return path.Join(DefaultParent, id), nil
	}
	if strings.ContainsRune(cgroupsPath, 0) {
		return "", fmt.Errorf("invalid cgroupsPath %q: contains a NUL byte", cgroupsPath)
	}
	for _, c := range strings.Split(cgroupsPath, "/") {
		if c == ".." {
			return "", fmt.Errorf("invalid cgroupsPath %q: must not contain \"..\"", cgroupsPath)
		}
	}
	clean := path.Clean(cgroupsPath)
	if clean == "/" || clean == "." {
		return "", fmt.Errorf("invalid cgroupsPath %q: refers to a cgroup root, not a container cgroup", cgroupsPath)
	}
	return clean, nil
}

func validateID(id string) error {
	switch {
	case id == "":
		return errors.New("container ID is required to derive the default cgroup path")
	case id == "." || id == "..", strings.ContainsAny(id, "/\x00"):
		return fmt.Errorf("container ID %q cannot be used as a cgroup name", id)
	}
	return nil
}

// systemdUnit is a parsed systemd-style cgroupsPath ("slice:prefix:name").
type systemdUnit struct {
	Slice  string // parent slice, e.g. "system.slice"
	Prefix string // scope prefix, e.g. "berth"
	Name   string // container name; the unit is "<prefix>-<name>.scope" unless Name ends in ".slice"
}

// parseSystemdPath parses the systemd driver's cgroupsPath syntax
// "slice:prefix:name" (the syntax runc, crun and containerd use). An empty
// cgroupsPath gives "system.slice:berth:<id>"; an empty slice defaults to
// system.slice.
func parseSystemdPath(id, cgroupsPath string) (systemdUnit, error) {
	if cgroupsPath == "" {
		if err := validateID(id); err != nil {
			return systemdUnit{}, err
		}
		return systemdUnit{Slice: DefaultSystemdSlice, Prefix: DefaultSystemdPrefix, Name: id}, nil
	}
	parts := strings.Split(cgroupsPath, ":")
	if len(parts) != 3 {
		return systemdUnit{}, fmt.Errorf("invalid systemd cgroupsPath %q: expected \"slice:prefix:name\"", cgroupsPath)
	}
	u := systemdUnit{Slice: parts[0], Prefix: parts[1], Name: parts[2]}
	if u.Slice == "" {
		u.Slice = DefaultSystemdSlice
	}
	if u.Name == "" {
		return systemdUnit{}, fmt.Errorf("invalid systemd cgroupsPath %q: empty name", cgroupsPath)
	}
	for _, s := range []string{u.Slice, u.Prefix, u.Name} {
		if strings.ContainsAny(s, "/\x00") || s == "." || s == ".." {
			return systemdUnit{}, fmt.Errorf("invalid systemd cgroupsPath %q: component %q", cgroupsPath, s)
		}
	}
	if !strings.HasSuffix(u.Slice, ".slice") {
		return systemdUnit{}, fmt.Errorf("invalid systemd cgroupsPath %q: %q is not a slice", cgroupsPath, u.Slice)
	}
	return u, nil
}

// systemdUnitFromPath recovers a systemdUnit from a persisted cgroup
// directory such as /sys/fs/cgroup/system.slice/berth-abc.scope. Only the
// resulting unit name matters to the systemd driver, so the prefix/name
// split at the first '-' is arbitrary but harmless.
func systemdUnitFromPath(dir string) systemdUnit {
	base := filepath.Base(dir)
	parent := filepath.Base(filepath.Dir(dir))
	u := systemdUnit{}
	if strings.HasSuffix(parent, ".slice") {
		u.Slice = parent
	}
	if strings.HasSuffix(base, ".slice") {
		u.Name = base
		return u
	}
	stem := strings.TrimSuffix(base, ".scope")
	if p, n, ok := strings.Cut(stem, "-"); ok {
		u.Prefix, u.Name = p, n
	} else {
		u.Name = stem
	}
	return u
}

// ownUnifiedCgroup returns the cgroup2 path ("0::" line) from the contents
// of a /proc/<pid>/cgroup file, or "/" when there is none.
func ownUnifiedCgroup(r io.Reader) (string, error) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		if p, ok := strings.CutPrefix(s.Text(), "0::"); ok {
			if p == "" {
				p = "/"
			}
			return p, nil
		}
	}
	if err := s.Err(); err != nil {
		return "", err
	}
	return "/", nil
}

// hybridUnifiedPath is where a container's cgroup2 directory goes on a hybrid
// host. Absolute paths are taken below the cgroup2 mount root, exactly like
// the v1 controllers below theirs. Relative paths are taken below the
// runtime's own cgroup2 cgroup (own, from /proc/self/cgroup), which is also
// what the v1 fs driver does for each v1 controller; the library itself
// would put them below the cgroup2 root, which would make the two
// hierarchies disagree.
func hybridUnifiedPath(mount, own, inner string) string {
	if path.IsAbs(inner) {
		return filepath.Join(mount, inner)
	}
	return filepath.Join(mount, own, inner)
}
