package vm

import (
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/runtime"
)

// Volumes and bind mounts reach a VM over virtio-fs: one virtiofsd per
// VM shares one directory of the VM's own (<vm>/shared) holding a bind
// mount of each source, made in a mount namespace of virtiofsd's own, so
// the host sees only empty stubs there and the guest exactly the
// sources (virtiofsd's sandbox pivots into that directory: never the
// host's root). The guest mounts the share at agent.SharedDir and the
// container's runtime there bind-mounts each entry where the spec says.

// share is one source shared with the guest, as entry Name of the share.
type share struct {
	Source   string `json:"source"`
	Name     string `json:"name"`
	Dir      bool   `json:"dir"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// shareTag is the virtio-fs tag of a VM's share.
const shareTag = "berth"

// Files in a VM's directory for the share.
const (
	sharedDir      = "shared"
	virtiofsSocket = "virtiofs.sock"
	virtiofsLog    = "virtiofsd.log"
)

// EnvVirtiofsd names the virtiofsd binary (else Debian's, in QEMU's
// helper directory, or one on PATH).
const EnvVirtiofsd = "BERTH_VM_VIRTIOFSD"

// FindVirtiofsd returns the virtiofsd binary.
func FindVirtiofsd() (string, error) {
	if p := os.Getenv(EnvVirtiofsd); p != "" {
		return p, nil
	}
	for _, p := range []string{"/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("virtiofsd"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("volumes and bind mounts in a VM need virtiofsd: install qemu-system-common or set %s: %w", EnvVirtiofsd, runtime.ErrNotSupported)
}

// isBind reports whether m is a bind mount (its type, or its options).
func isBind(m *specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// shareMounts picks the spec's bind mounts the guest gets over virtio-fs
// (all but the engine's small files, which travel as copies) and points
// each one's source at its entry of the share in the guest.
func shareMounts(spec *specs.Spec) ([]share, error) {
	return shareMountsNamed(spec, "m")
}

// shareMountsNamed is shareMounts with the entries' names starting with
// prefix (a pod's share holds every container's).
func shareMountsNamed(spec *specs.Spec, prefix string) ([]share, error) {
	var shares []share
	for i := range spec.Mounts {
		m := &spec.Mounts[i]
		if !isBind(m) || slices.Contains(guestFiles, m.Destination) || m.Source == agent.PodShmDir {
			continue
		}
		st, err := os.Stat(m.Source)
		if err != nil {
			return nil, fmt.Errorf("bind mount %s: %w", m.Destination, err)
		}
		if !st.IsDir() && !st.Mode().IsRegular() {
			return nil, fmt.Errorf("bind mount %s: %s is a %s: a VM gets directories and files only: %w", m.Destination, m.Source, st.Mode().Type(), runtime.ErrNotSupported)
		}
		sh := share{Source: m.Source, Name: prefix + strconv.Itoa(len(shares)), Dir: st.IsDir(), ReadOnly: slices.Contains(m.Options, "ro")}
		shares = append(shares, sh)
		m.Source = agent.SharedDir + "/" + sh.Name
	}
	return shares, nil
}

// startVirtiofsd makes the share's stubs, then, on a thread that enters
// a new mount namespace (a slave of the host's: the host's later mounts
// and unmounts still reach it, its own never leave it), bind-mounts each
// source onto its stub and starts virtiofsd there. The thread stays
// blocked in virtiofsd's wait: its exit would end virtiofsd
// (PR_SET_PDEATHSIG follows the thread that forked). It returns once
// virtiofsd listens.
func (s *shim) startVirtiofsd(exited chan<- struct{}) error {
	bin, err := FindVirtiofsd()
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(sharedDir)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if s.cfg.Pod {
		// Shared, so that what the pod's containers' shims mount here
		// later reaches virtiofsd's namespace, a slave of it (pod_linux.go).
		// Private first: a bind within a shared mount would be a peer
		// of it, and what is mounted here would spread to every peer.
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("the pod's share: %w", err)
		}
		if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("the pod's share: make it private: %w", err)
		}
		if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
			return fmt.Errorf("the pod's share: make it shared: %w", err)
		}
	}
	for _, sh := range s.cfg.Shares {
		stub := filepath.Join(dir, sh.Name)
		if sh.Dir {
			err = os.Mkdir(stub, 0o700)
		} else {
			err = os.WriteFile(stub, nil, 0o600)
		}
		if err != nil {
			return err
		}
	}
	logf, err := os.OpenFile(virtiofsLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	// The shim listens and hands virtiofsd the socket (--fd): QEMU can
	// connect as soon as virtiofsd runs, and virtiofsd makes no pid
	// file, which it names after the socket path (the same relative path
	// in every VM's directory: a second VM's virtiofsd could not lock
	// it, "Cannot lock pid file").
	os.Remove(virtiofsSocket)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: virtiofsSocket, Net: "unix"})
	if err != nil {
		logf.Close()
		return err
	}
	l.SetUnlinkOnClose(false)
	sock, err := l.File()
	l.Close()
	if err != nil {
		logf.Close()
		return err
	}
	defer sock.Close()
	started := make(chan error, 1)
	go func() {
		defer close(exited)
		goruntime.LockOSThread() // never unlocked: the thread ends with this goroutine
		cmd, err := s.virtiofsdInNamespace(bin, dir, logf, sock)
		logf.Close()
		started <- err
		if err != nil {
			return
		}
		log.Printf("virtiofsd exited: %v", cmd.Wait())
	}()
	if err := <-started; err != nil {
		return s.withVirtiofsLog(fmt.Errorf("virtiofsd: %w", err))
	}
	return nil
}

// virtiofsdInNamespace runs on a locked thread: a mount namespace of its
// own, the binds, then virtiofsd forked from this thread.
func (s *shim) virtiofsdInNamespace(bin, dir string, logf, sock *os.File) (*exec.Cmd, error) {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return nil, fmt.Errorf("a mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return nil, fmt.Errorf("make the mount namespace a slave: %w", err)
	}
	for _, sh := range s.cfg.Shares {
		if err := bindShare(sh, filepath.Join(dir, sh.Name)); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(bin,
		"--fd=3",
		"-o", "source="+dir,
		// Metadata cached for a second: the host's changes show in the
		// guest within that (docker's volumes with Kata's default).
		"-o", "cache=auto",
		// Leave the file limit: raising it needs CAP_SYS_RESOURCE.
		"--rlimit-nofile=0",
		"-o", "log_level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{sock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// withVirtiofsLog adds the tail of virtiofsd's log to an error.
func (s *shim) withVirtiofsLog(err error) error {
	b, _ := os.ReadFile(virtiofsLog)
	if len(b) > 400 {
		b = b[len(b)-400:]
	}
	if len(b) == 0 {
		return err
	}
	return fmt.Errorf("%w: %s", err, b)
}
