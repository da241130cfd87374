//go:build linux

package integration

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requireVM skips unless this host can run berth's VM isolation, saying
// why (berth info knows: QEMU, a guest kernel).
func (e *engineEnv) requireVM() {
	e.t.Helper()
	if ok, why := e.vmAvailable(); !ok {
		e.t.Skipf("vm isolation %s (make deps installs qemu-system-x86 and linux-image-cloud-amd64)", why)
	}
}

// vmAvailable says whether this host runs berth's VM isolation, and
// what berth info says of it.
func (e *engineEnv) vmAvailable() (bool, string) {
	e.t.Helper()
	// The text output: info's JSON keeps docker's shape.
	for _, l := range strings.Split(e.run("info"), "\n") {
		if rest, ok := strings.CutPrefix(l, " vm: "); ok {
			if strings.HasPrefix(rest, "available") {
				e.t.Logf("vm isolation: %s", rest)
				return true, rest
			}
			return false, rest
		}
	}
	e.t.Fatal("berth info lists no vm isolation")
	return false, ""
}

// forEachIsolation runs body once per isolation, each in a subtest with
// an engine of its own whose run and create add --isolation: "linux",
// then "vm" where this host runs VMs (the subtest says why not
// otherwise). The engine's tests that take it run the same assertions
// on a VM container; each VM boot costs seconds under TCG, so it is for
// tests that start few containers.
func forEachIsolation(t *testing.T, body func(t *testing.T, e *engineEnv)) {
	for _, iso := range []string{"linux", "vm"} {
		t.Run(iso, func(t *testing.T) {
			e := newEngine(t)
			e.loadDemoImage()
			if iso == "vm" {
				e.requireVM()
				e.isolation = iso
			}
			body(t, e)
		})
	}
}

// TestVMIsolation runs containers in microVMs: output and exit codes,
// signals through the agent, run -d/stop/wait/rm, volumes and bind
// mounts over virtio-fs (both ways, read-only), and nothing left
// after: no QEMU, no shim, no mount, no VM directory, no temporary file
// in the caches. Few boots: each takes seconds under TCG.
func TestVMIsolation(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.requireVM()
	// Under TCG, info says how much translated code a VM may hold, and
	// names a bad BERTH_VM_TCG_CODE_MIB, which a VM's create refuses.
	if info := e.run("info"); strings.Contains(info, " vm: available: tcg") {
		if !strings.Contains(info, "TCG's translated code up to 32 MiB a VM (BERTH_VM_TCG_CODE_MIB)") {
			t.Errorf("berth info under TCG does not give the code buffer's size:\n%s", info)
		}
		env := e.env
		e.env = append(slices.Clone(env), "BERTH_VM_TCG_CODE_MIB=lots")
		if info := e.run("info"); !strings.Contains(info, `BERTH_VM_TCG_CODE_MIB="lots": want the MiB`) {
			t.Errorf("berth info with a bad BERTH_VM_TCG_CODE_MIB:\n%s", info)
		}
		if _, errOut, err := e.try("run", "--rm", "--isolation", "vm", demoImage, "true"); err == nil || !strings.Contains(errOut, "BERTH_VM_TCG_CODE_MIB") {
			t.Errorf("a VM with a bad BERTH_VM_TCG_CODE_MIB: %v (%s), want a refusal naming it", err, errOut)
		}
		e.env = env
	}

	start := time.Now()
	if out, errOut, err := e.try("run", "--rm", "--isolation", "vm", demoImage, "echo", "hi"); err != nil || out != "hi\n" {
		t.Fatalf("run --isolation vm echo hi: %q, %v (%s)", out, err, errOut)
	}
	t.Logf("first VM run (initramfs, layer image, probe, boot): %v", time.Since(start))

	// Both streams, and the exit code; docker's --runtime spelling. In
	// the guest the process runs under berth's linux runtime: PID 1 of
	// its own pid namespace, with seccomp.
	// The engine's /etc/hostname and /etc/hosts reach the guest.
	code, out, errOut := e.exitCode("run", "--rm", "--runtime", "vm", "--hostname", "vmhost", demoImage, "sh", "-c",
		`echo out $$ $(grep ^Seccomp: /proc/self/status | cut -f2) $(cat /etc/hostname) $(grep -c localhost /etc/hosts); echo err >&2; exit 3`)
	if code != 3 || out != "out 1 2 vmhost 2\n" || !strings.Contains(errOut, "err\n") {
		t.Errorf("exit 3 in a VM: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := e.exitCode("run", "--rm", "--isolation", "vm", demoImage, "no-such-command"); code != 127 {
		t.Errorf("a missing command in a VM: exit %d, want 127 (%s)", code, errOut)
	}
	// A device does not reach a guest over virtio-fs: refused, not
	// silently dropped.
	if code, _, errOut := e.exitCode("run", "--rm", "--isolation", "vm", "-v", "/dev/null:/data", demoImage, "true"); code != 125 || !strings.Contains(errOut, "/data") {
		t.Errorf("a device bind-mounted in a VM: exit %d (%s), want 125 naming it", code, errOut)
	}
	if code, _, errOut := e.exitCode("run", "--rm", "--isolation", "bogus", demoImage, "true"); code != 125 || !strings.Contains(errOut, "vm") {
		t.Errorf("--isolation bogus: exit %d (%s), want 125 naming the isolations", code, errOut)
	}

	// Two layers, the upper one deleting a file of the lower (an overlay
	// whiteout, which must survive mkfs.erofs), and stdin.
	e.run("run", "--name", "vmbase", demoImage, "sh", "-c", "rm /bin/vi; mkdir /data; echo upper > /data/f")
	e.run("commit", "vmbase", "berth-test/vm-two:1")
	e.run("rm", "vmbase")
	cmd := e.command("run", "--rm", "-i", "--isolation", "vm", "berth-test/vm-two:1", "sh", "-c", "ls /bin/vi 2>/dev/null || echo no vi; cat /data/f; cat")
	cmd.Stdin = strings.NewReader("from stdin\n")
	if out, err := cmd.Output(); err != nil || string(out) != "no vi\nupper\nfrom stdin\n" {
		t.Errorf("a two-layer image in a VM: %q, %v", out, err)
	}
	images := func() int {
		m, _ := filepath.Glob(filepath.Join(e.root, "vm", "erofs", "*.img"))
		return len(m)
	}
	if n := images(); n != 2 {
		t.Errorf("%d layer images after runs of a one- and a two-layer image sharing a layer, want 2", n)
	}
	// rmi removes the upper layer, and with it its EROFS image.
	e.run("rmi", "berth-test/vm-two:1")
	if n := images(); n != 1 {
		t.Errorf("%d layer images after rmi of the two-layer image, want 1", n)
	}

	// Detached: the stop signal reaches the process in the guest (its
	// trap sets the exit code), then wait and rm. Its volumes (below)
	// come over virtio-fs.
	shared := t.TempDir()
	os.WriteFile(filepath.Join(shared, "before"), []byte("host wrote before\n"), 0o644)
	e.run("run", "-d", "--isolation", "vm", "--name", "vmd", "-m", "96m", "--cpus", "1.5", "-v", shared+":/data", "-v", "vmvol:/vol", "-v", shared+":/ro:ro", demoImage,
		"sh", "-c", `trap 'echo got TERM; exit 7' TERM; echo up; while :; do sleep 0.1; done`)
	waitFor(t, 60*time.Second, "the VM's process to start", func() bool {
		logs, _, _ := e.try("logs", "vmd")
		return strings.Contains(logs, "up")
	})
	in := e.inspect("vmd")
	if !in.State.Running || in.State.Pid <= 0 {
		t.Fatalf("vmd: running %v, pid %d", in.State.Running, in.State.Pid)
	}
	if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(in.State.Pid) + "/cmdline"); !strings.HasPrefix(string(comm), "berth-vmm\x00") {
		t.Errorf("the pid of a VM container is %q, want its shim", comm)
	}
	// pause freezes the whole VM, unpause lets it run on.
	e.run("pause", "vmd")
	if st := e.inspect("vmd").State.Status; st != "paused" {
		t.Errorf("vmd after pause: %s", st)
	}
	e.run("unpause", "vmd")
	if st := e.inspect("vmd").State.Status; st != "running" {
		t.Errorf("vmd after unpause: %s", st)
	}

	// exec: in the container's namespaces (its pid namespace: the
	// container's process is PID 1 there), both streams, stdin, the
	// exit code, a missing command, a numeric user.
	cmd = e.command("exec", "-i", "vmd", "sh", "-c", `ps -o pid,comm | grep -c "^ *1 sh"; cat; echo err >&2; exit 5`)
	cmd.Stdin = strings.NewReader("exec stdin\n")
	var eout, eerr strings.Builder
	cmd.Stdout, cmd.Stderr = &eout, &eerr
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != 5 || eout.String() != "1\nexec stdin\n" || eerr.String() != "err\n" {
		t.Errorf("exec in a VM: exit %d (%v), stdout %q, stderr %q", cmd.ProcessState.ExitCode(), err, eout.String(), eerr.String())
	}
	if code, _, errOut := e.exitCode("exec", "vmd", "no-such-command"); code != 127 {
		t.Errorf("exec of a missing command in a VM: exit %d, want 127 (%s)", code, errOut)
	}
	if out := e.run("exec", "-u", "1000:1001", "vmd", "id"); out != "uid=1000 gid=1001\n" {
		t.Errorf("exec -u 1000:1001 in a VM: %q", out)
	}
	// top and stats through the agent: the container's processes in the
	// guest, its cgroup's numbers there (--memory enforced inside).
	top := e.run("top", "vmd")
	if lines := strings.Split(top, "\n"); !strings.HasPrefix(lines[0], "UID") || !strings.HasSuffix(strings.TrimSpace(lines[0]), "CMD") || !strings.Contains(top, "sh -c trap") {
		t.Errorf("top of a VM container: %q", top)
	}
	if out := e.run("top", "vmd", "-o", "pid,comm"); !strings.Contains(out, "PID") || !strings.Contains(out, "sh") {
		t.Errorf("top vmd -o pid,comm: %q", out)
	}
	if _, errOut, err := e.try("top", "vmd", "-L"); err == nil || !strings.Contains(errOut, `"-L"`) {
		t.Errorf("top with a ps option the guest lacks: %v (%s), want a refusal naming it", err, errOut)
	}
	if out := e.run("stats", "--no-stream", "--format", "{{.MemUsage}} {{.PIDs}}", "vmd"); !strings.Contains(out, "/ 96MiB ") || strings.HasSuffix(strings.TrimSpace(out), " 0") {
		t.Errorf("stats of a VM container: %q, want its limit (96MiB) and its processes", out)
	}
	// cp and export of a running VM container go through its agent (its
	// writes live in the guest): out of it (a directory the guest made,
	// renamed as docker does; a file of a volume, as the container sees
	// it), into it, a missing path by name; export has the guest's
	// writes and not the volumes. diff cannot reach them yet: refused by
	// name, never the host overlay's image files instead.
	e.run("exec", "vmd", "sh", "-c", "mkdir -p /made/sub && echo guest-made > /made/sub/f")
	cpDir := t.TempDir()
	e.run("cp", "vmd:/made", filepath.Join(cpDir, "out"))
	if b, err := os.ReadFile(filepath.Join(cpDir, "out", "sub", "f")); err != nil || string(b) != "guest-made\n" {
		t.Errorf("cp out of a VM container: %q, %v", b, err)
	}
	e.run("cp", "vmd:/data/before", cpDir)
	if b, err := os.ReadFile(filepath.Join(cpDir, "before")); err != nil || string(b) != "host wrote before\n" {
		t.Errorf("cp out of a VM container's volume: %q, %v", b, err)
	}
	os.WriteFile(filepath.Join(cpDir, "in.txt"), []byte("from the host\n"), 0o644)
	e.run("cp", filepath.Join(cpDir, "in.txt"), "vmd:/made/")
	if out := e.run("exec", "vmd", "cat", "/made/in.txt"); out != "from the host\n" {
		t.Errorf("cp into a VM container: %q", out)
	}
	if _, errOut, err := e.try("cp", "vmd:/no-such-file", cpDir); err == nil || !strings.Contains(errOut, "could not find") {
		t.Errorf("cp of a missing path out of a VM container: %v (%s)", err, errOut)
	}
	exported := filepath.Join(cpDir, "x.tar")
	e.run("export", "-o", exported, "vmd")
	if list, err := exec.Command("tar", "-tf", exported).Output(); err != nil || !strings.Contains(string(list), "made/sub/f") || strings.Contains(string(list), "before") || !strings.Contains(string(list), "bin/busybox") {
		t.Errorf("export of a VM container: %v; want the image and the guest's writes, not its volume:\n%s", err, list)
	}
	if out := e.run("diff", "vmd"); !strings.Contains(out, "A /made/in.txt\n") || strings.Contains(out, "before") {
		t.Errorf("diff of a running VM container: %q; want what cp put in, not its volume", out)
	}
	e.run("commit", "vmd", "berth-test/vmd:1")
	if out, errOut, err := e.try("run", "--rm", "--isolation", "linux", "--network", "none", "berth-test/vmd:1", "cat", "/made/in.txt"); err != nil || out != "from the host\n" {
		t.Errorf("the image committed from a running VM container: %q, %v (%s)", out, err, errOut)
	}
	e.run("rmi", "berth-test/vmd:1")
	// --cpus sizes the VM (two vCPUs for 1.5) and is the container's
	// quota in the guest.
	if out := e.run("exec", "vmd", "sh", "-c", "nproc; cat /sys/fs/cgroup/cpu.max"); out != "2\n150000 100000\n" {
		t.Errorf("--cpus 1.5 in a VM: %q, want 2 vCPUs and the quota", out)
	}
	// A host directory, both ways while the VM runs; a read-only one; a
	// named volume, whose data stays on the host after the VM.
	os.WriteFile(filepath.Join(shared, "after"), []byte("host wrote after\n"), 0o644)
	out = e.run("exec", "vmd", "sh", "-c", `cat /data/before /data/after; echo guest wrote > /data/from-guest; echo in volume > /vol/f; echo x > /ro/x 2>/dev/null || echo ro refused`)
	if out != "host wrote before\nhost wrote after\nro refused\n" {
		t.Errorf("volumes in a VM: %q", out)
	}
	if b, err := os.ReadFile(filepath.Join(shared, "from-guest")); err != nil || string(b) != "guest wrote\n" {
		t.Errorf("a file the guest wrote in a bind mount, on the host: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(shared, "x")); err == nil {
		t.Error("the guest wrote through a read-only bind mount")
	}
	// exec -t: a pty in the guest, sized as the caller's.
	m, sl := openPty(t)
	unix.IoctlSetWinsize(int(sl.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 21, Col: 77})
	cmd = e.command("exec", "-it", "vmd", "sh", "-c", "tty; sleep 0.3; stty size; exit 4")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = sl, sl, sl
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sl.Close()
	tout := &lockedBuffer{}
	go io.Copy(tout, m)
	err := cmd.Wait()
	time.Sleep(100 * time.Millisecond)
	m.Close()
	if cmd.ProcessState.ExitCode() != 4 || !strings.Contains(tout.String(), "/dev/pts/") || !strings.Contains(tout.String(), "21 77") {
		t.Errorf("exec -it in a VM: exit %d (%v), output %q", cmd.ProcessState.ExitCode(), err, tout.String())
	}
	e.run("stop", "vmd")
	if code := strings.TrimSpace(e.run("wait", "vmd")); code != "7" {
		t.Errorf("wait after stop printed %s, want 7 (the process's TERM trap)", code)
	}
	if logs, _, _ := e.try("logs", "vmd"); !strings.Contains(logs, "got TERM") {
		t.Errorf("logs of vmd: %q, want the trap's output", logs)
	}
	e.run("rm", "vmd")
	if out := e.run("run", "--rm", "-v", "vmvol:/vol", demoImage, "cat", "/vol/f"); out != "in volume\n" {
		t.Errorf("the named volume the VM wrote, from a linux container: %q", out)
	}

	// QEMU killed with SIGKILL under a running container (with a
	// volume: virtiofsd runs too; on the default network: a tap): the
	// container is reported exited with 137, as a process killed by
	// SIGKILL, and nothing is left (no shim, virtiofsd, mount, VM
	// directory; the network namespace with its tap goes with the run).
	// berth kill -s KILL (the shim) is TestEngineOOMKilled's under vm.
	e.run("run", "-d", "--isolation", "vm", "--name", "vmk", "-v", shared+":/data", demoImage, "sh", "-c", "echo up; exec sleep 1000")
	waitFor(t, 60*time.Second, "vmk's process to start", func() bool {
		logs, _, _ := e.try("logs", "vmk")
		return strings.Contains(logs, "up")
	})
	shimPid := e.inspect("vmk").State.Pid
	qemuPid := childNamed(t, shimPid, "qemu-system")
	if err := unix.Kill(qemuPid, unix.SIGKILL); err != nil {
		t.Fatalf("kill -9 QEMU (%d): %v", qemuPid, err)
	}
	if code := strings.TrimSpace(e.run("wait", "vmk")); code != "137" {
		t.Errorf("wait after kill -9 of QEMU printed %s, want 137", code)
	}
	if in := e.inspect("vmk"); in.State.Status != "exited" || in.State.ExitCode != 137 || in.State.OOMKilled {
		t.Errorf("after kill -9 of QEMU: %s, exit %d, OOMKilled %v; want exited, 137, false", in.State.Status, in.State.ExitCode, in.State.OOMKilled)
	}
	e.run("rm", "vmk")

	e.checkNothingLeft()
	e.checkNoVMLeft()
}

// checkNoVMLeft asserts that no QEMU, virtiofsd or shim of this test runs, the VM
// driver's state is empty and its caches hold only finished files.
func (e *engineEnv) checkNoVMLeft() {
	e.t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		s := string(b)
		// A template's QEMU works in the root's cache, a VM's in the
		// state directory.
		if (strings.HasPrefix(s, "berth-vmm\x00") || strings.Contains(s, "qemu-system") || strings.Contains(s, "virtiofsd")) && (strings.Contains(s+readCwd(p), e.state) || strings.Contains(s+readCwd(p), e.root)) {
			e.t.Errorf("left running: %s", strings.ReplaceAll(s, "\x00", " "))
		}
	}
	ents, _ := os.ReadDir(filepath.Join(e.state, "vm"))
	for _, ent := range ents {
		if pods, _ := os.ReadDir(filepath.Join(e.state, "vm", ent.Name())); ent.Name() == "pods" && len(pods) == 0 {
			continue // the pods' VMs' parent, empty
		}
		e.t.Errorf("VM state left: %s", ent.Name())
	}
	filepath.Walk(filepath.Join(e.root, "vm"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && (strings.Contains(fi.Name(), ".tmp-") || strings.HasPrefix(fi.Name(), "probe-") || strings.HasPrefix(fi.Name(), ".making-")) {
			e.t.Errorf("temporary file left in the VM cache: %s", p)
		}
		return nil
	})
}

// childNamed is the pid of parent's child whose command line holds name.
func childNamed(t *testing.T, parent int, name string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(parent) {
			continue
		}
		if cl, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline")); strings.Contains(string(cl), name) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	t.Fatalf("no child %s of %d", name, parent)
	return 0
}

func readCwd(cmdlinePath string) string {
	s, _ := os.Readlink(filepath.Join(filepath.Dir(cmdlinePath), "cwd"))
	return s
}

// TestVMTerminal: run -it in a VM: the guest's pty has the host
// terminal's size and follows its resizes, typed input arrives, and the
// exit code comes back.
func TestVMTerminal(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.requireVM()
	m, s := openPty(t)
	defer m.Close()
	unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 111})
	cmd := e.command("run", "--rm", "-it", "--isolation", "vm", demoImage, "sh", "-c", `tty; stty size; read line; echo "read:$line"; stty size; exit 6`)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	out := &lockedBuffer{}
	readDone := make(chan struct{})
	go func() { io.Copy(out, m); close(readDone) }()
	waitFor(t, 60*time.Second, "the size on the VM's tty", func() bool { return strings.Contains(out.String(), "33 111") })
	unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 100})
	time.Sleep(500 * time.Millisecond)
	m.Write([]byte("typed\r"))
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 6 {
		t.Errorf("run -it in a VM: %v, want exit 6", err)
	}
	select {
	case <-readDone:
	case <-time.After(2 * time.Second):
	}
	got := out.String()
	for _, want := range []string{"/dev/pts/0", "33 111", "read:typed", "40 100"} {
		if !strings.Contains(got, want) {
			t.Errorf("run -it in a VM: output %q lacks %q", got, want)
		}
	}
	e.checkNothingLeft()
	e.checkNoVMLeft()
}

// TestVMNetwork: a VM joins its container's network namespace (a tap
// wired to the CNI interface there): two VM containers on a user network
// reach each other by name (the engine's name server, relayed from the
// guest), a published port answers on the host's loopback and the
// container's address, a linux container on the same network reaches the
// VM too, and inside the guest the host's interfaces are invisible (lo
// and eth0 only, with the address the engine gave). Two boots.
func TestVMNetwork(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	e.requireVM()
	e.run("network", "create", "vmnet")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	e.run("run", "-d", "--isolation", "vm", "--network", "vmnet", "--name", "vmweb", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), demoImage,
		"sh", "-c", "mkdir /www && echo served-from-vm > /www/index.html && exec httpd -f -p 80 -h /www")
	ip := e.ipOf("vmweb")
	get := func(url string) (string, error) {
		resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	var body string
	waitFor(t, 60*time.Second, "the VM's httpd through the published port", func() bool {
		body, err = get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		return err == nil
	})
	if body != "served-from-vm\n" {
		t.Errorf("the published port (127.0.0.1:%d): %q", port, body)
	}
	if body, err := get("http://" + ip + "/"); err != nil || body != "served-from-vm\n" {
		t.Errorf("the VM container's address %s from the host: %q, %v", ip, body, err)
	}
	// Another VM: by name through the relayed name server, and only
	// its own interfaces.
	out, errOut, err := e.try("run", "--rm", "--isolation", "vm", "--network", "vmnet", demoImage, "sh", "-c",
		`ls /sys/class/net | tr '\n' ' '; echo; ip -o -4 addr show eth0 | grep -o 'inet [0-9./]*'; wget -qO- http://vmweb/`)
	lines := strings.Split(out, "\n")
	if err != nil || len(lines) < 3 || lines[0] != "eth0 lo " || !strings.HasPrefix(lines[1], "inet 10.89.") || lines[2] != "served-from-vm" {
		t.Errorf("a second VM on vmnet: %q, %v (%s); want only eth0 and lo, an address of vmnet, and vmweb's page by name", out, err, errOut)
	}
	// A linux container on the same network reaches the VM by name.
	if out, errOut, err := e.try("run", "--rm", "--network", "vmnet", demoImage, "wget", "-qO-", "http://vmweb/"); err != nil || out != "served-from-vm\n" {
		t.Errorf("a linux container reaching the VM by name: %q, %v (%s)", out, err, errOut)
	}
	// A VM shares no one's network namespace, and no one shares its:
	// refused by name.
	for _, mode := range []string{"host", "container:vmweb"} {
		if code, _, errOut := e.exitCode("run", "--rm", "--isolation", "vm", "--network", mode, demoImage, "true"); code != 125 || !strings.Contains(errOut, "--network "+mode) {
			t.Errorf("--network %s in a VM: exit %d (%s), want 125 naming it", mode, code, errOut)
		}
	}
	if code, _, errOut := e.exitCode("run", "--rm", "--network", "container:vmweb", demoImage, "true"); code != 125 || !strings.Contains(errOut, "--network container:vmweb") {
		t.Errorf("a linux container joining a VM's network namespace: exit %d (%s), want 125 naming it", code, errOut)
	}
	// Its interfaces are fixed at its start: no connect while it runs.
	e.run("network", "create", "vmother")
	if code, _, errOut := e.exitCode("network", "connect", "vmother", "vmweb"); code == 0 || !strings.Contains(errOut, "stop it first") {
		t.Errorf("network connect of a running VM: exit %d (%s), want a refusal", code, errOut)
	}
	e.run("network", "rm", "vmother")
	e.run("rm", "-f", "vmweb")
	if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
		t.Errorf("port %d still answers after rm", port)
	}
	e.run("network", "rm", "vmnet")
	e.checkNetworkClean()
	e.checkNothingLeft()
	e.checkNoVMLeft()
}

// TestVMHostConfinement: where the berth user has subordinate IDs, each
// VM's QEMU drops to an ID of them of its own once it has opened its
// files (-runas): no capabilities, no_new_privs, a user no other VM's
// QEMU has; volumes, the network and exec work as before, and rm frees
// the ID. Without subordinate IDs QEMU stays root (the host's files are
// not edited for it). The shim, QEMU and virtiofsd run in the container's
// cgroup on the host, bounded in memory and tasks, removed with the
// container.
func TestVMHostConfinement(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.requireVM()
	keepSubIDFiles(t)
	const base = 3100000
	for _, path := range []string{"/etc/subuid", "/etc/subgid"} {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "berth:%d:65536\n", base)
		f.Close()
	}
	shared := t.TempDir()
	qemuStatus := func(name string) map[string]string {
		t.Helper()
		waitFor(t, 60*time.Second, name+"'s process to start", func() bool {
			logs, _, _ := e.try("logs", name)
			return strings.Contains(logs, "up")
		})
		pid := childNamed(t, e.inspect(name).State.Pid, "qemu-system")
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		st := map[string]string{}
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				st[k] = strings.Fields(v + " -")[0]
			}
		}
		return st
	}
	e.run("run", "-d", "--isolation", "vm", "--name", "uq1", "-v", shared+":/data", demoImage, "sh", "-c", "echo up; echo from-guest > /data/f; exec sleep 1000")
	e.run("run", "-d", "--isolation", "vm", "--name", "uq2", demoImage, "sh", "-c", "echo up; exec sleep 1000")
	s1, s2 := qemuStatus("uq1"), qemuStatus("uq2")
	for name, st := range map[string]map[string]string{"uq1": s1, "uq2": s2} {
		uid, _ := strconv.Atoi(st["Uid"])
		gid, _ := strconv.Atoi(st["Gid"])
		if uid < base || uid >= base+65536 || gid < base || gid >= base+65536 || st["CapEff"] != "0000000000000000" || st["NoNewPrivs"] != "1" {
			t.Errorf("%s's QEMU: uid %s gid %s CapEff %s NoNewPrivs %s; want an ID of berth's subordinate range, no capabilities, no_new_privs",
				name, st["Uid"], st["Gid"], st["CapEff"], st["NoNewPrivs"])
		}
	}
	if s1["Uid"] == s2["Uid"] {
		t.Errorf("two VMs' QEMUs share the user %s", s1["Uid"])
	}
	// The host cgroup: the shim's, QEMU's and virtiofsd's are the
	// container's, with a memory and a task bound.
	id1 := e.inspect("uq1").ID
	shim := e.inspect("uq1").State.Pid
	memCgroup := func(pid int) string {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		for _, l := range strings.Split(string(data), "\n") {
			if f := strings.SplitN(l, ":", 3); len(f) == 3 && (f[1] == "memory" || f[0] == "0" && f[1] == "") {
				return f[2]
			}
		}
		return ""
	}
	// The shim runs the small embedded shim binary (cmd/berth-vmm),
	// sealed: not the whole berth binary, whose pages would be each
	// VM's memory.
	var sfs syscall.Statfs_t
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", shim)); err != nil || !strings.HasPrefix(exe, "/run/berth/exe/vmm-") {
		t.Errorf("the VM's shim runs %q (%v), want the sealed /run/berth/exe/vmm-<key>", exe, err)
	} else if syscall.Statfs(exe, &sfs) != nil || sfs.Flags&1 == 0 { // ST_RDONLY
		t.Errorf("the shim's binary %s is not on a read-only mount (flags %#x)", exe, sfs.Flags)
	}
	cg := memCgroup(shim)
	if !strings.HasSuffix(cg, id1) {
		t.Errorf("the VM's shim is in cgroup %q, want the container's (ending in its ID)", cg)
	}
	for _, name := range []string{"qemu-system", "virtiofsd"} {
		if got := memCgroup(childNamed(t, shim, name)); got != cg {
			t.Errorf("%s is in cgroup %q, the shim in %q", name, got, cg)
		}
	}
	memLimit := func(dir string) (string, bool) {
		for _, f := range []string{"/sys/fs/cgroup/memory" + dir + "/memory.limit_in_bytes", "/sys/fs/cgroup" + dir + "/memory.max"} {
			if b, err := os.ReadFile(f); err == nil {
				return strings.TrimSpace(string(b)), true
			}
		}
		return "", false
	}
	if lim, ok := memLimit(cg); !ok || lim == "max" || len(lim) >= 19 {
		t.Errorf("the VM's host cgroup %s has no memory bound: %q", cg, lim)
	}
	if data, err := os.ReadFile(filepath.Join(shared, "f")); err != nil || string(data) != "from-guest\n" {
		t.Errorf("a volume of a VM whose QEMU is unprivileged: %q %v", data, err)
	}
	if out := e.run("exec", "uq2", "echo", "exec-ok"); out != "exec-ok\n" {
		t.Errorf("exec in a VM whose QEMU is unprivileged: %q", out)
	}
	// rm frees the IDs: the next VM gets the first one again.
	e.run("rm", "-f", "uq1", "uq2")
	if _, ok := memLimit(cg); ok {
		t.Errorf("the VM's host cgroup %s is left after rm", cg)
	}
	e.run("run", "-d", "--isolation", "vm", "--name", "uq3", demoImage, "sh", "-c", "echo up; exec sleep 1000")
	if s3 := qemuStatus("uq3"); s3["Uid"] != strconv.Itoa(base) {
		t.Errorf("after rm of both, the next VM's QEMU runs as %s, want the freed %d", s3["Uid"], base)
	}
	e.run("rm", "-f", "uq3")

	// A pod's VM: its QEMU, too, drops to an ID of its own (the pod's,
	// freed with it); its container's volume still works.
	e.run("pod", "create", "--isolation", "vm", "--network", "none", "--name", "uqp")
	e.run("run", "-d", "--pod", "uqp", "--name", "uqc", "-v", shared+":/data", demoImage, "sh", "-c", "echo up; echo from-pod > /data/p; exec sleep 1000")
	waitFor(t, 30*time.Second, "uqc's process to start", func() bool {
		logs, _, _ := e.try("logs", "uqc")
		return strings.Contains(logs, "up")
	})
	if q := e.qemusOf(); len(q) != 1 {
		t.Errorf("QEMUs of the pod: %v", q)
	} else if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", q[0])); err != nil || !strings.Contains(string(data), fmt.Sprintf("\nUid:\t%d\t", base)) || !strings.Contains(string(data), "\nCapEff:\t0000000000000000\n") {
		t.Errorf("the pod's QEMU, want uid %d (the first free) and no capabilities:\n%s", base, data)
	}
	if data, err := os.ReadFile(filepath.Join(shared, "p")); err != nil || string(data) != "from-pod\n" {
		t.Errorf("a volume of a pod's container whose QEMU is unprivileged: %q %v", data, err)
	}
	e.run("pod", "rm", "-f", "uqp")

	// Without subordinate IDs: root, as before.
	dropBerthEntries(t)
	e.run("run", "-d", "--isolation", "vm", "--name", "uq4", demoImage, "sh", "-c", "echo up; exec sleep 1000")
	if s4 := qemuStatus("uq4"); s4["Uid"] != "0" {
		t.Errorf("without berth's subordinate IDs QEMU runs as %s, want root", s4["Uid"])
	}
	e.run("rm", "-f", "uq4")
	e.checkNothingLeft()
	e.checkNoVMLeft()
}
