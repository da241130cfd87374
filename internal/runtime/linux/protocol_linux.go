package linux

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/berth-dev/berth/internal/runtime/linux/seccomp"
	"io"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Environment variables of the hidden init entry point.
const (
	envInit = "_BERTH_INIT" // fd number of the sync socket for the Go init
)

// initConfig is what the parent sends to the Go side of the init after the
// constructor reported the pid.
type initConfig struct {
	Kind         string         `json:"kind"` // "create" or "exec"
	ID           string         `json:"id"`
	Bundle       string         `json:"bundle"`
	Rootfs       string         `json:"rootfs"`
	Spec         *specs.Spec    `json:"spec,omitempty"`
	Process      *specs.Process `json:"process"`
	HostPid      int            `json:"host_pid"`
	NoPivot      bool           `json:"no_pivot,omitempty"`
	NoNewKeyring bool           `json:"no_new_keyring,omitempty"`
	PreserveFDs  int            `json:"preserve_fds,omitempty"`
	FifoFD       int            `json:"fifo_fd,omitempty"`
	FifoIsDir    bool           `json:"fifo_is_dir,omitempty"` // FifoFD is the state dir holding exec.fifo
	ConsoleFD    int            `json:"console_fd,omitempty"`
	// InlineFDs: the init was forked ahead (prefork_linux.go) and got its
	// stdio and descriptors over the socket; FifoFD, ConsoleFD and
	// MountTrees are then positions among them (3 is the first after
	// stdio), not numbers.
	InlineFDs bool `json:"inline_fds,omitempty"`
	// NewMountNS and NewUTSNS tell the init what it owns.
	NewMountNS bool `json:"new_mount_ns,omitempty"`
	// HostMountNS: config.json has no mount namespace, so the rootfs is
	// set up in the caller's and entered with chroot.
	HostMountNS bool `json:"host_mount_ns,omitempty"`
	NewUTSNS    bool `json:"new_uts_ns,omitempty"`
	NewUserNS   bool `json:"new_user_ns,omitempty"`
	// NewCgroupNS: the init creates its cgroup namespace itself, once the
	// parent says it is in its cgroup (see spawnRequest.lateCgroup).
	NewCgroupNS bool `json:"new_cgroup_ns,omitempty"`
	// RuntimeHooks: the init must stop and let the parent run prestart and
	// createRuntime hooks.
	RuntimeHooks bool `json:"runtime_hooks,omitempty"`
	// Cgroup paths of the container, to bind into the rootfs for cgroup
	// mounts: not sent with the config (the cgroup is still being made);
	// the init sets them from the "cgroup-paths" message and reads them
	// only after it.
	CgroupPaths map[string]string `json:"-"`
	// RootfsIsCwd: the init's working directory is the rootfs (the
	// constructor's chdir), which it sets up from there rather than by
	// path (a new user namespace's root may not look the path up).
	RootfsIsCwd bool `json:"rootfs_is_cwd,omitempty"`
	// MountTrees are the descriptors of detached mounts the parent made
	// for spec.Mounts, by index (bind mounts of a container in a new user
	// namespace, idmapped mounts): attached, not mounted by path.
	MountTrees map[int]int `json:"mount_trees,omitempty"`
	// Seccomp is the filter the parent compiled from Spec.Linux.Seccomp
	// (the init compiles it itself when this is nil).
	Seccomp *seccomp.Program `json:"seccomp,omitempty"`
}

// message is a JSON line on the sync socket after the config.
type message struct {
	Type string `json:"type"` // cgroup-paths, cgroup, createRuntime, ok, ready, error
	Msg  string `json:"msg,omitempty"`
	// CgroupPaths (cgroup-paths, with lateCgroup) are the container's
	// cgroups, made while the init worked; see initConfig.CgroupPaths.
	CgroupPaths map[string]string `json:"cgroup_paths,omitempty"`
}

// syncConn reads the constructor's text lines and then JSON messages from
// the same stream, so it keeps one buffered reader for both.
type syncConn struct {
	f   *os.File
	r   *bufio.Reader
	enc *json.Encoder
}

func newSyncConn(f *os.File) *syncConn {
	return &syncConn{f: f, r: bufio.NewReader(f), enc: json.NewEncoder(f)}
}

func (s *syncConn) readLine() (string, error) {
	line, err := s.r.ReadString('\n')
	if err != nil {
		if err == io.EOF && line == "" {
			return "", io.EOF
		}
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}

func (s *syncConn) send(v any) error { return s.enc.Encode(v) }

func (s *syncConn) recv(v any) error {
	line, err := s.r.ReadBytes('\n')
	if err != nil {
		if err == io.EOF && len(line) == 0 {
			return io.EOF
		}
		return err
	}
	return json.Unmarshal(line, v)
}

// errChildGone is returned when the init closed the socket without a word.
var errChildGone = errors.New("container init exited before it was ready")

func (s *syncConn) expect(typ string) (*message, error) {
	var m message
	if err := s.recv(&m); err != nil {
		if err == io.EOF {
			return nil, errChildGone
		}
		return nil, fmt.Errorf("read from container init: %w", err)
	}
	if m.Type == "error" {
		return nil, errors.New(m.Msg)
	}
	if typ != "" && m.Type != typ {
		return nil, fmt.Errorf("container init sent %q, expected %q", m.Type, typ)
	}
	return &m, nil
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
