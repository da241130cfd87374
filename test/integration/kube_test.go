package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The rig the kubelet and cluster tests share: Kubernetes' binaries
// (scripts/build-kubernetes.sh), a network namespace of the test's own
// that every component runs in, berth serve there, and processes that
// are stopped and whose logs are printed when the test fails.
//
// Why a namespace (docs/architecture.md, "Tested with a real kubelet"):
// the kubelet refuses a loopback node IP and kubectl exec/logs need a node
// address, the host has no dummy links, and the tests send traffic only
// to namespaces they make. A veth pair inside it carries 192.0.2.10
// (documentation range); nothing leaves it. Processes enter it with
// nsenter --net (never ip netns exec, whose private mount namespace hides
// /sys/fs/cgroup from the kubelet and keeps copies of berth's netns bind
// mounts alive). berth serve runs there too, so the streaming URLs it
// hands out (loopback) are the kubelet's and crictl's loopback.

// kubeNodeIP is the node's address inside the test's namespace.
const kubeNodeIP = "192.0.2.10"

// kubernetesBin is the directory of kubelet, kube-apiserver,
// kube-controller-manager, kube-scheduler and kubectl (BERTH_KUBERNETES,
// which make sets to scripts/build-kubernetes.sh's output).
func kubernetesBin(t *testing.T) string {
	dir := os.Getenv("BERTH_KUBERNETES")
	if dir == "" {
		t.Skip("no Kubernetes binaries: run scripts/build-kubernetes.sh and set BERTH_KUBERNETES to the directory it prints (make test and make cluster-test do)")
	}
	for _, b := range []string{"kubelet", "kubectl"} {
		if !fileExists(filepath.Join(dir, b)) {
			t.Fatalf("BERTH_KUBERNETES=%s has no %s: run scripts/build-kubernetes.sh", dir, b)
		}
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("no nsenter (apt-get install util-linux)")
	}
	return dir
}

// kubeRig is one test's namespace, directory and processes.
type kubeRig struct {
	t      *testing.T
	e      *engineEnv
	bin    string // Kubernetes' binaries
	dir    string
	netns  string // /run/netns/NAME
	logDir string

	mu    sync.Mutex
	procs []*kubeProc
}

// kubeProc is a process of the rig with its log.
type kubeProc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when waited for
	err  error
}

func newKubeRig(t *testing.T, e *engineEnv) *kubeRig {
	requireCNI(t)
	k := &kubeRig{t: t, e: e, bin: kubernetesBin(t), dir: t.TempDir()}
	k.logDir = filepath.Join(k.dir, "logs")
	os.MkdirAll(k.logDir, 0o755)
	var b [4]byte
	rand.Read(b[:])
	name := "berth-kube-" + hex.EncodeToString(b[:])
	k.netns = "/run/netns/" + name
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ip("-n", name, "link", "set", "lo", "up")
	ip("-n", name, "link", "add", "kube0", "type", "veth", "peer", "name", "kube1")
	ip("-n", name, "addr", "add", kubeNodeIP+"/24", "dev", "kube0")
	ip("-n", name, "link", "set", "kube1", "up")
	ip("-n", name, "link", "set", "kube0", "up")
	// A default route: components that look for the host's interface
	// find kube0. Nothing answers at 192.0.2.1: traffic to it stays here.
	ip("-n", name, "route", "add", "default", "via", "192.0.2.1", "dev", "kube0")
	// Registered after the namespace's removal, so run before it: every
	// process ends first, then (failed tests) the logs are printed.
	t.Cleanup(k.stopAll)
	return k
}

// command is name run inside the namespace.
func (k *kubeRig) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("nsenter", append([]string{"--net=" + k.netns, "--", name}, args...)...)
	cmd.Env = os.Environ()
	return cmd
}

// start starts a long-running process in the namespace, its output in
// logs/<name>.log; stopAll ends it.
func (k *kubeRig) start(name string, cmd *exec.Cmd) *kubeProc {
	k.t.Helper()
	logPath := filepath.Join(k.logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		k.t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		k.t.Fatalf("start %s: %v", name, err)
	}
	p := &kubeProc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	k.mu.Lock()
	k.procs = append(k.procs, p)
	k.mu.Unlock()
	return p
}

// stop ends p: SIGTERM, then SIGKILL after 15 s.
func (p *kubeProc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Errorf("%s did not end on SIGTERM within 15 s", p.name)
		p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends p with SIGKILL and waits for it.
func (p *kubeProc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// exited says whether p has ended.
func (p *kubeProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stopAll stops the processes, last started first, and prints the end of
// each log when the test failed.
func (k *kubeRig) stopAll() {
	k.mu.Lock()
	procs := k.procs
	k.procs = nil
	k.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop(k.t)
	}
	if !k.t.Failed() {
		return
	}
	for _, p := range procs {
		data, _ := os.ReadFile(p.log)
		if len(data) > 12000 {
			data = append([]byte("...\n"), data[len(data)-12000:]...)
		}
		k.t.Logf("---- %s (%s):\n%s", p.name, p.log, data)
	}
}

// serve starts berth serve --cri-socket in the namespace (more arguments
// after) and waits for its socket.
func (k *kubeRig) serve(sock string, args ...string) *kubeProc {
	k.t.Helper()
	all := append([]string{"--root", k.e.root, "--state", k.e.state, "serve", "--cri-socket", sock}, args...)
	cmd := k.command(k.e.bin, all...)
	cmd.Env = k.e.env
	p := k.start("berth-serve", cmd)
	waitFor(k.t, 20*time.Second, "berth serve's CRI socket", func() bool {
		if p.exited() {
			k.t.Fatalf("berth serve ended: %v", p.err)
		}
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// resetEngine removes every pod and container and the networks with
// their firewall chains from inside the namespace, where serve made them
// (the engine's own cleanup runs in the host's namespace later and finds
// nothing).
func (k *kubeRig) resetEngine() {
	cmd := k.command(k.e.bin, "--root", k.e.root, "--state", k.e.state, "system", "reset", "--force")
	cmd.Env = k.e.env
	if out, err := cmd.CombinedOutput(); err != nil {
		k.t.Errorf("berth system reset in the test's namespace: %v: %s", err, out)
	}
}

// crictl runs crictl against sock in the namespace (exec and
// port-forward reach serve's streaming server on the namespace's
// loopback).
func (k *kubeRig) crictl(sock string, args ...string) (string, error) {
	k.t.Helper()
	cfg := filepath.Join(k.dir, "crictl.yaml")
	if !fileExists(cfg) {
		os.WriteFile(cfg, nil, 0o644)
	}
	all := append([]string{"--config", cfg, "--runtime-endpoint", "unix://" + sock, "--image-endpoint", "unix://" + sock, "--timeout", "30s"}, args...)
	out, err := k.command(crictlPath(k.t), all...).CombinedOutput()
	return string(out), err
}

// httpClient is an HTTP client whose connections are made inside the
// namespace.
func (k *kubeRig) httpClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: k.dial}}
}

// dial connects from inside the namespace: a locked thread enters it,
// dials, and goes back. A thread that cannot go back is never unlocked,
// so the runtime ends it. (Ending threads as a rule would kill the rig's
// processes: their parent-death signal follows the thread that started
// them.)
func (k *kubeRig) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open(k.netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("setns %s: %w", k.netns, err)}
			return
		}
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// get is the body of a GET inside the namespace, "" on any failure.
func (k *kubeRig) get(url string) string {
	resp, err := k.httpClient().Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

// portForward starts a port-forward command (crictl's or kubectl's, in
// the namespace) from a local port it picks to the pod's 8080
// (forwardingFrom, cri_stream_test.go) and returns that port, or an
// error saying why it did not forward.
func (k *kubeRig) portForward(name string, cmd *exec.Cmd) (string, error) {
	k.t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	var errb lockedBuffer
	cmd.Stderr = &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	k.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			if m := forwardingFrom.FindStringSubmatch(sc.Text()); m != nil && !sent {
				port <- m[1]
				sent = true
			}
		}
		if !sent {
			close(port)
		}
	}()
	select {
	case p, ok := <-port:
		if !ok {
			return "", fmt.Errorf("%s ended without forwarding: %s", name, errb.String())
		}
		return p, nil
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("%s printed no 'Forwarding from' within 30 s: %s", name, errb.String())
	}
}

// kubeletGone undoes what the kubelet leaves on the host once it has
// stopped: the bind mount of its root directory onto itself, and its
// links in /var/log/containers (a fixed path) to the test's logs.
func (k *kubeRig) kubeletGone(rootDir string) {
	if err := unix.Unmount(rootDir, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		k.t.Errorf("unmount the kubelet's root %s: %v", rootDir, err)
	}
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, l := range links {
		if dest, err := os.Readlink(l); err == nil && strings.HasPrefix(dest, k.dir+"/") {
			os.Remove(l)
		}
	}
}
