package spec

import (
	"fmt"
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultMounts are docker's pseudo-filesystems. /sys and its cgroup
// mount are read-only unless privileged.
func defaultMounts(privileged bool) []specs.Mount {
	ro := []string{"ro"}
	if privileged {
		ro = nil
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: append([]string{"nosuid", "noexec", "nodev"}, ro...)},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: append([]string{"nosuid", "noexec", "nodev", "relatime"}, ro...)},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
	}
}

// cleanDest checks a container path is absolute and cleans it.
func cleanDest(what, p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%s: container path %q must be absolute", what, p)
	}
	return path.Clean(p), nil
}

// tmpfsDefaults are docker's --tmpfs options; each user option of the
// same kind ("exec" for "noexec") replaces one.
var tmpfsDefaults = []struct{ def, opposite string }{
	{"noexec", "exec"}, {"nosuid", "suid"}, {"nodev", "dev"},
}

// parseTmpfs parses "/dest" or "/dest:opt,opt".
func parseTmpfs(s string) (specs.Mount, error) {
	dest, optS, hasOpts := strings.Cut(s, ":")
	dest, err := cleanDest(fmt.Sprintf("--tmpfs %q", s), dest)
	if err != nil {
		return specs.Mount{}, err
	}
	var user []string
	if hasOpts {
		for _, o := range strings.Split(optS, ",") {
			if o == "" {
				return specs.Mount{}, fmt.Errorf("--tmpfs %q: empty mount option", s)
			}
			user = append(user, o)
		}
	}
	var opts []string
	for _, d := range tmpfsDefaults {
		if !slices.Contains(user, d.def) && !slices.Contains(user, d.opposite) {
			opts = append(opts, d.def)
		}
	}
	opts = append(opts, user...)
	return specs.Mount{Destination: dest, Type: "tmpfs", Source: "tmpfs", Options: opts}, nil
}

func bindMount(b Bind) (specs.Mount, error) {
	what := fmt.Sprintf("bind %s:%s", b.Source, b.Destination)
	if !path.IsAbs(b.Source) {
		return specs.Mount{}, fmt.Errorf("%s: host path %q must be absolute", what, b.Source)
	}
	dest, err := cleanDest(what, b.Destination)
	if err != nil {
		return specs.Mount{}, err
	}
	opts := []string{"rbind"}
	if b.ReadOnly {
		opts = append(opts, "ro")
	}
	return specs.Mount{Destination: dest, Type: "bind", Source: path.Clean(b.Source), Options: opts}, nil
}

// mounts returns the default mounts, less those a user mount replaces,
// followed by the tmpfs and bind mounts in order.
func mounts(o Options) ([]specs.Mount, error) {
	var user []specs.Mount
	seen := map[string]bool{}
	add := func(m specs.Mount) error {
		if seen[m.Destination] {
			return fmt.Errorf("two mounts on %s", m.Destination)
		}
		seen[m.Destination] = true
		user = append(user, m)
		return nil
	}
	for _, t := range o.Tmpfs {
		m, err := parseTmpfs(t)
		if err != nil {
			return nil, err
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	for _, b := range o.Binds {
		m, err := bindMount(b)
		if err != nil {
			return nil, err
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	var out []specs.Mount
	for _, m := range defaultMounts(o.Privileged) {
		if !seen[m.Destination] {
			out = append(out, m)
		}
	}
	return append(out, user...), nil
}
