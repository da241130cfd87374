package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrInvalidConfig marks a config.json the runtime refuses.
var ErrInvalidConfig = errors.New("invalid config")

// LoadBundle reads and validates <bundle>/config.json. The returned rootfs
// is absolute (root.path is relative to the bundle when not absolute).
func LoadBundle(bundle string) (*specs.Spec, string, error) {
	abs, err := filepath.Abs(bundle)
	if err != nil {
		return nil, "", fmt.Errorf("bundle %s: %w", bundle, err)
	}
	path := filepath.Join(abs, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, "", fmt.Errorf("bundle %s: config.json not found: run `berth runtime spec` in the bundle to create one: %w", abs, err)
		}
		return nil, "", fmt.Errorf("bundle %s: %w", abs, err)
	}
	spec, err := ParseSpec(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	rootfs := spec.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(abs, rootfs)
	}
	if fi, err := os.Stat(rootfs); err != nil {
		return nil, "", fmt.Errorf("%s: root.path %s: %w", path, rootfs, err)
	} else if !fi.IsDir() {
		return nil, "", fmt.Errorf("%s: root.path %s is not a directory: %w", path, rootfs, ErrInvalidConfig)
	}
	return spec, rootfs, nil
}

// ParseSpec decodes config.json and checks what every runtime operation
// relies on.
func ParseSpec(data []byte) (*specs.Spec, error) {
	var spec specs.Spec
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&spec); err != nil {
		return nil, fmt.Errorf("parse: %w (%w)", err, ErrInvalidConfig)
	}
	if err := Validate(&spec); err != nil {
		return nil, err
	}
	return &spec, nil
}

// Validate checks the fields whose absence would make the runtime guess.
func Validate(spec *specs.Spec) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalidConfig)
	}
	if spec.Version == "" {
		return bad("ociVersion is empty")
	}
	if !strings.HasPrefix(spec.Version, "1.") {
		return bad("ociVersion %q is not supported (berth implements runtime-spec 1.x)", spec.Version)
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return bad("root.path is required")
	}
	if spec.Process != nil {
		if err := ValidateProcess(spec.Process); err != nil {
			return err
		}
	}
	for i, m := range spec.Mounts {
		if m.Destination == "" {
			return bad("mounts[%d].destination is empty", i)
		}
		// A relative destination (allowed by runtime-spec 1.0) is taken
		// from / and resolved inside the rootfs, so it cannot escape.
	}
	if spec.Linux != nil {
		seen := map[specs.LinuxNamespaceType]bool{}
		for _, ns := range spec.Linux.Namespaces {
			if _, ok := NamespaceFlags[ns.Type]; !ok {
				return bad("linux.namespaces: unknown type %q", ns.Type)
			}
			if seen[ns.Type] {
				return bad("linux.namespaces: type %q listed twice", ns.Type)
			}
			seen[ns.Type] = true
		}
		if (len(spec.Linux.UIDMappings) > 0 || len(spec.Linux.GIDMappings) > 0) && !seen[specs.UserNamespace] {
			return bad("linux.uidMappings/gidMappings need a user namespace in linux.namespaces")
		}
	}
	return nil
}

// ValidateProcess checks a process object, used by create and exec.
func ValidateProcess(p *specs.Process) error {
	if len(p.Args) == 0 && p.CommandLine == "" {
		return fmt.Errorf("process.args must not be empty: %w", ErrInvalidConfig)
	}
	if p.Cwd == "" {
		return fmt.Errorf("process.cwd is required: %w", ErrInvalidConfig)
	}
	if !filepath.IsAbs(p.Cwd) {
		return fmt.Errorf("process.cwd %q must be an absolute path: %w", p.Cwd, ErrInvalidConfig)
	}
	for _, c := range capNames(p.Capabilities) {
		if _, ok := CapabilityByName(c); !ok {
			return fmt.Errorf("process.capabilities: unknown capability %q: %w", c, ErrInvalidConfig)
		}
	}
	for _, r := range p.Rlimits {
		if _, ok := RlimitByName(r.Type); !ok {
			return fmt.Errorf("process.rlimits: unknown type %q: %w", r.Type, ErrInvalidConfig)
		}
		if r.Soft > r.Hard {
			return fmt.Errorf("process.rlimits: %s soft limit %d is above its hard limit %d: %w", r.Type, r.Soft, r.Hard, ErrInvalidConfig)
		}
	}
	return nil
}

func capNames(c *specs.LinuxCapabilities) []string {
	if c == nil {
		return nil
	}
	var all []string
	for _, set := range [][]string{c.Bounding, c.Effective, c.Inheritable, c.Permitted, c.Ambient} {
		all = append(all, set...)
	}
	return all
}

// NamespaceFlags maps a namespace type to its CLONE_NEW* bit. The values
// are Linux ABI constants, kept here so validation is platform-independent.
var NamespaceFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.MountNamespace:   0x00020000,
	specs.UTSNamespace:     0x04000000,
	specs.IPCNamespace:     0x08000000,
	specs.UserNamespace:    0x10000000,
	specs.PIDNamespace:     0x20000000,
	specs.NetworkNamespace: 0x40000000,
	specs.CgroupNamespace:  0x02000000,
	specs.TimeNamespace:    0x00000080,
}

// ProcNamespaceFile is the name of a namespace under /proc/<pid>/ns.
var ProcNamespaceFile = map[specs.LinuxNamespaceType]string{
	specs.MountNamespace:   "mnt",
	specs.UTSNamespace:     "uts",
	specs.IPCNamespace:     "ipc",
	specs.UserNamespace:    "user",
	specs.PIDNamespace:     "pid",
	specs.NetworkNamespace: "net",
	specs.CgroupNamespace:  "cgroup",
	specs.TimeNamespace:    "time",
}
