package integration

// Container-escape regression tests: each test is an actual attack, from a
// process inside a busybox container or through a hostile bundle, against a
// known runtime CVE class. Every test also asserts that its attack was really
// set up (the symlink was planted, the runtime binary really ran inside the
// container, the mask really exists, ...), so it cannot pass vacuously.
//
// Some attacks need a program busybox cannot be: a small static Go program
// (secProbeSource) is built once per test binary and copied into the rootfs
// as /bin/probe.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/moby/sys/mountinfo"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// secProbeSource is the in-container helper. Modes:
//
//	fds                          list this process's fds, their type and where they point
//	cwd <marker>                 print getcwd(2) raw and create <marker> relative to the cwd
//	uname                        print the UTS domainname and /proc/sys/kernel/domainname
//	attack-exe <dur> <stop> <id> CVE-2019-5736: find processes whose /proc/<pid>/exe is the
//	                             runtime binary under test (<id> = dev:ino) and try to write it
//	procpeek <pid> <marker>      open /proc/<pid>/{fd/*,cwd,root,exe}; write <marker> in dirs
//	unmask-userns <files...>     in new user+mount+pid namespaces, try to unmask /proc/<files>
//
// It writes with write(2) on fd 1 so that nothing of Go's (the poller) adds
// fds to what "fds" reports.
const secProbeSource = `package main

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func out(format string, a ...any) {
	syscall.Write(1, []byte(fmt.Sprintf(format, a...)+"\n"))
}

func main() {
	if len(os.Args) < 2 {
		out("usage: probe fds|cwd|uname|attack-exe")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "fds":
		listFDs()
	case "cwd":
		cwd(os.Args[2])
	case "uname":
		uname()
	case "attack-exe":
		attackExe(os.Args[2], os.Args[3], os.Args[4])
	case "procpeek":
		procPeek(os.Args[2], os.Args[3])
	case "unmask-userns":
		unmaskUserns(os.Args[2:])
	case "unmask-inner":
		unmaskInner(os.Args[2:])
	default:
		out("unknown mode %s", os.Args[1])
		os.Exit(2)
	}
}

func listFDs() {
	dfd, err := syscall.Open("/proc/self/fd", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		out("error open /proc/self/fd: %v", err)
		os.Exit(1)
	}
	var names []string
	buf := make([]byte, 16384)
	for {
		n, err := syscall.ReadDirent(dfd, buf)
		if err != nil {
			out("error readdirent: %v", err)
			os.Exit(1)
		}
		if n <= 0 {
			break
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
	var fds []int
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd == dfd {
			continue
		}
		fds = append(fds, fd)
	}
	sort.Ints(fds)
	for _, fd := range fds {
		target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		if err != nil {
			target = "readlink-error:" + err.Error()
		}
		kind := "unknown"
		var st syscall.Stat_t
		if syscall.Fstat(fd, &st) == nil {
			switch st.Mode & syscall.S_IFMT {
			case syscall.S_IFDIR:
				kind = "dir"
			case syscall.S_IFREG:
				kind = "reg"
			case syscall.S_IFIFO:
				kind = "fifo"
			case syscall.S_IFSOCK:
				kind = "sock"
			case syscall.S_IFCHR:
				kind = "chr"
			default:
				kind = "other"
			}
		}
		out("fd %d %s %s", fd, kind, target)
	}
	out("fds-end")
}

func cwd(marker string) {
	buf := make([]byte, 4096)
	n, err := syscall.Getcwd(buf)
	s := ""
	if err == nil && n > 0 {
		s = string(buf[:n-1])
	}
	out("cwd=%s", s)
	out("cwd-err=%v", err)
	fd, err := syscall.Open(marker, syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		out("marker-error=%v", err)
		return
	}
	syscall.Write(fd, []byte("written by a container process relative to process.cwd\n"))
	syscall.Close(fd)
	out("marker-created")
}

// unmaskUserns re-runs the probe as root of a new user, mount and pid
// namespace (as any unprivileged process may) to try to unmask /proc files.
func unmaskUserns(files []string) {
	cmd := exec.Command("/proc/self/exe", append([]string{"unmask-inner"}, files...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
	}
	out("userns-run=%v", cmd.Run())
}

func unmaskInner(files []string) {
	out("userns-uid=%d", os.Getuid())
	for _, f := range files {
		out("userns-umount-%s=%v", f, syscall.Unmount("/proc/"+f, 0))
		out("userns-umount-lazy-%s=%v", f, syscall.Unmount("/proc/"+f, syscall.MNT_DETACH))
	}
	views := []string{"/proc", "/unmask/np", "/unmask/nb", "/unmask/nrb"}
	out("userns-mount-proc=%v", syscall.Mount("proc", "/unmask/np", "proc", 0, ""))
	out("userns-bind-proc=%v", syscall.Mount("/proc", "/unmask/nb", "", syscall.MS_BIND, ""))
	out("userns-rbind-proc=%v", syscall.Mount("/proc", "/unmask/nrb", "", syscall.MS_BIND|syscall.MS_REC, ""))
	for _, d := range views[1:] {
		for _, f := range files {
			out("userns-umount-%s/%s=%v", d, f, syscall.Unmount(d+"/"+f, syscall.MNT_DETACH))
		}
	}
	for _, f := range files {
		for _, d := range views {
			out("userns-view %s/%s=%s", d, f, view(d+"/"+f))
		}
	}
	out("userns-inner-done")
}

// view says what path is: "null" for the 1:3 character device that masks
// a file, "err:..." when it cannot be reached, else its type and size.
func view(path string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return "err:" + err.Error()
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFCHR && st.Rdev == 0x103 {
		return "null"
	}
	data, err := os.ReadFile(path)
	return fmt.Sprintf("mode=%o read=%d err=%v", st.Mode, len(data), err)
}

// procPeek looks, as a process exec'd into a created container, at the
// init's /proc entries: every fd, cwd, root and exe. A directory it can
// open gets a marker file, which must never land on the host.
func procPeek(pid, marker string) {
	base := "/proc/" + pid
	var paths []string
	if ents, err := os.ReadDir(base + "/fd"); err != nil {
		out("list %s/fd err=%v", base, err)
	} else {
		for _, e := range ents {
			paths = append(paths, base+"/fd/"+e.Name())
		}
	}
	paths = append(paths, base+"/cwd", base+"/root", base+"/exe")
	for _, p := range paths {
		link, err := os.Readlink(p)
		if err != nil {
			out("readlink %s err=%v", p, err)
		} else {
			out("readlink %s -> %s", p, link)
		}
		fd, err := syscall.Open(p, oPath|syscall.O_CLOEXEC, 0)
		if err != nil {
			out("open %s err=%v", p, err)
			continue
		}
		var st syscall.Stat_t
		syscall.Fstat(fd, &st)
		out("OPENED %s mode=%o", p, st.Mode)
		if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			m, err := syscall.Open("/proc/self/fd/"+strconv.Itoa(fd)+"/"+marker, syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o644)
			if err == nil {
				syscall.Close(m)
				out("MARKER created through %s", p)
			} else {
				out("marker through %s err=%v", p, err)
			}
		}
		syscall.Close(fd)
	}
	out("peek-done")
}

func cstr(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func uname() {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		out("uname-error=%v", err)
		return
	}
	out("domainname=%s", cstr(u.Domainname[:]))
	data, err := os.ReadFile("/proc/sys/kernel/domainname")
	if err != nil {
		out("procfile-error=%v", err)
		return
	}
	out("procfile=%s", string(data))
}

func errName(err error) string {
	if e, ok := err.(syscall.Errno); ok {
		return fmt.Sprintf("%s(%d)", e.Error(), int(e))
	}
	return err.Error()
}

const oPath = 0x200000 // O_PATH

type key struct{ dev, ino uint64 }

type target struct {
	pid     int
	fd      int
	link    string
	found   time.Time
	lastErr string
}

var marker = []byte("\x7fPWNED by a container process (CVE-2019-5736)\n")

// attackExe only ever writes to the runtime binary under test (victim is
// its "dev:ino"), a memfd, or a deleted file: without a pid namespace it
// could otherwise reach real host binaries.
func attackExe(durStr, stop, victim string) {
	dur, err := time.ParseDuration(durStr)
	if err != nil {
		out("bad duration: %v", err)
		os.Exit(2)
	}
	deadline := time.Now().Add(dur)
	ignore := map[key]bool{}
	for _, p := range []string{"/proc/self/exe", "/bin/busybox"} {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil {
			ignore[key{uint64(st.Dev), st.Ino}] = true
		}
	}
	seen := map[key]*target{}
	var active []*target
	denied := map[string]int{}
	me := os.Getpid()
	out("attacker ready pid=%d", me)
	var stopAt time.Time
	for time.Now().Before(deadline) {
		if stopAt.IsZero() {
			if _, err := os.Stat(stop); err == nil {
				stopAt = time.Now()
			}
		}
		if !stopAt.IsZero() && (len(active) == 0 || time.Since(stopAt) > 3*time.Second) {
			break
		}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == me {
				continue
			}
			p := "/proc/" + e.Name() + "/exe"
			fd, err := syscall.Open(p, oPath|syscall.O_CLOEXEC, 0)
			if err != nil {
				denied["open O_PATH /proc/<pid>/exe: "+errName(err)]++
				continue
			}
			var st syscall.Stat_t
			if syscall.Fstat(fd, &st) != nil {
				syscall.Close(fd)
				continue
			}
			k := key{uint64(st.Dev), st.Ino}
			link, _ := os.Readlink(p)
			// The copy under test, or what it runs instead of itself:
			// a memfd, an unlinked file, or a sealed file under
			// <state>/exe (the whole binary's, or the small runtime's
			// that berth-runtime and the init re-execute into).
			isVictim := fmt.Sprintf("%d:%d", k.dev, k.ino) == victim || strings.HasPrefix(link, "memfd:") || st.Nlink == 0 ||
				strings.Contains(link, "/berth/exe/")
			if ignore[k] || seen[k] != nil || !isVictim {
				syscall.Close(fd)
				continue
			}
			tg := &target{pid: pid, fd: fd, link: link, found: time.Now()}
			seen[k] = tg
			active = append(active, tg)
			out("target pid=%d exe=%s size=%d", pid, link, st.Size)
			if wfd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_CLOEXEC, 0); err == nil {
				n, werr := syscall.Pwrite(wfd, marker, 0)
				syscall.Close(wfd)
				out("WROTE via /proc/%d/exe n=%d err=%v", pid, n, werr)
			} else {
				out("direct-write pid=%d err=%s", pid, errName(err))
			}
		}
		next := active[:0]
		for _, tg := range active {
			wfd, err := syscall.Open("/proc/self/fd/"+strconv.Itoa(tg.fd), syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
			if err == nil {
				n, werr := syscall.Pwrite(wfd, marker, 0)
				syscall.Close(wfd)
				out("WROTE via reopened O_PATH fd of /proc/%d/exe (%s) n=%d err=%v", tg.pid, tg.link, n, werr)
				continue
			}
			tg.lastErr = errName(err)
			if time.Since(tg.found) > 2*time.Second {
				out("write-failed pid=%d exe=%s err=%s", tg.pid, tg.link, tg.lastErr)
				continue
			}
			next = append(next, tg)
		}
		active = next
	}
	for _, tg := range active {
		out("write-failed pid=%d exe=%s err=%s (deadline)", tg.pid, tg.link, tg.lastErr)
	}
	var ds []string
	for d := range denied {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	for _, d := range ds {
		out("denied %s x%d", d, denied[d])
	}
	out("attacker done targets=%d", len(seen))
}
`

var secProbe struct {
	once sync.Once
	data []byte
	err  error
}

// secProbeBinary builds secProbeSource once (static, CGO off) and returns
// the executable's bytes.
func secProbeBinary(t testing.TB) []byte {
	t.Helper()
	secProbe.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-security-probe-")
		if err != nil {
			secProbe.err = err
			return
		}
		defer os.RemoveAll(dir)
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module berthsecprobe\n\ngo 1.21\n"), 0o644); err != nil {
			secProbe.err = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(secProbeSource), 0o644); err != nil {
			secProbe.err = err
			return
		}
		gobin, err := exec.LookPath("go")
		if err != nil {
			if root := os.Getenv("GOROOT"); root != "" {
				gobin = filepath.Join(root, "bin", "go")
			} else {
				secProbe.err = fmt.Errorf("the go tool is needed to build the in-container probe: %w", err)
				return
			}
		}
		c := exec.Command(gobin, "build", "-trimpath", "-o", filepath.Join(dir, "probe"), ".")
		c.Dir = dir
		c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local")
		if out, err := c.CombinedOutput(); err != nil {
			secProbe.err = fmt.Errorf("build probe: %v\n%s", err, out)
			return
		}
		secProbe.data, secProbe.err = os.ReadFile(filepath.Join(dir, "probe"))
	})
	if secProbe.err != nil {
		t.Fatal(secProbe.err)
	}
	return secProbe.data
}

// secBundle is newBundle plus /bin/probe in the rootfs.
func secBundle(t *testing.T, r *runtimeEnv, args ...string) *bundle {
	t.Helper()
	probe := secProbeBinary(t)
	b := newBundle(t, berthBin(t), args...)
	if err := os.WriteFile(b.rootfs("bin/probe"), probe, 0o755); err != nil {
		t.Fatal(err)
	}
	return b
}

// secCopyELFDeps copies the ELF interpreter and shared libraries bin needs
// into rootfs at the same paths, as an ordinary distribution image has
// them, so that bin can run inside the container.
func secCopyELFDeps(t testing.TB, bin, rootfs string) {
	t.Helper()
	dirs := []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}
	seen := map[string]bool{}
	copyIn := func(p string) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(rootfs, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var visit func(p string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		f, err := elf.Open(p)
		if err != nil {
			t.Fatalf("read ELF %s: %v", p, err)
		}
		defer f.Close()
		for _, prog := range f.Progs {
			if prog.Type != elf.PT_INTERP {
				continue
			}
			data, err := io.ReadAll(prog.Open())
			if err != nil {
				t.Fatal(err)
			}
			interp := strings.TrimRight(string(data), "\x00")
			copyIn(interp)
			visit(interp)
		}
		libs, _ := f.ImportedLibraries()
		for _, lib := range libs {
			found := false
			for _, d := range dirs {
				c := filepath.Join(d, lib)
				if _, err := os.Stat(c); err == nil {
					copyIn(c)
					visit(c)
					found = true
					break
				}
			}
			if !found {
				t.Fatalf("%s needs %s, not found in %v", p, lib, dirs)
			}
		}
	}
	visit(bin)
}

// secRemoveMount drops the config's mount on dest.
func secRemoveMount(s *specs.Spec, dest string) {
	var kept []specs.Mount
	for _, m := range s.Mounts {
		if filepath.Clean(m.Destination) != dest {
			kept = append(kept, m)
		}
	}
	s.Mounts = kept
}

// secRuntime runs `berth runtime ARGS` with a deadline and returns stdout,
// stderr and the exit code.
func secRuntime(t testing.TB, r *runtimeEnv, timeout time.Duration, extra []*os.File, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, r.bin, append([]string{"runtime", "--root", r.root}, args...)...)
	var so, se bytes.Buffer
	c.Stdout, c.Stderr = &so, &se
	c.ExtraFiles = extra
	c.WaitDelay = 2 * time.Second
	err := c.Run()
	if ctx.Err() != nil {
		t.Fatalf("berth runtime %s: timed out after %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), timeout, so.String(), se.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("berth runtime %s: %v", strings.Join(args, " "), err)
	}
	return so.String(), se.String(), code
}

// secCreateStart creates and starts a container whose stdout and stderr go
// to a host file, returned for reading.
func secCreateStart(t testing.TB, r *runtimeEnv, b *bundle, id string, extraArgs ...string) string {
	t.Helper()
	logPath := secCreate(t, r, b, id, extraArgs...)
	r.run("start", id)
	return logPath
}

// secCreate creates a container (its init waits for start) whose stdout
// and stderr go to a host file, returned for reading.
func secCreate(t testing.TB, r *runtimeEnv, b *bundle, id string, extraArgs ...string) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), id+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := append([]string{"runtime", "--root", r.root, "create", "--bundle", b.Dir}, extraArgs...)
	c := exec.CommandContext(ctx, r.bin, append(args, id)...)
	c.Stdout, c.Stderr = logf, logf
	if err := c.Run(); err != nil {
		data, _ := os.ReadFile(logPath)
		t.Fatalf("create %s: %v\n%s", id, err, data)
	}
	return logPath
}

// secWaitFile polls path until it contains want.
func secWaitFile(t testing.TB, path, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), want) {
			return string(data)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never contained %q; it has:\n%s", path, want, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func secSha256(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// secReadFile reads a file an escape could have turned into something
// else (a pty, a fifo bound over it): only a regular file is read, without
// blocking; anything else comes back as a description.
func secReadFile(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "stat error: " + err.Error()
	}
	if !fi.Mode().IsRegular() {
		return "not a regular file: " + fi.Mode().String()
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return "open error: " + err.Error()
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return "read error: " + err.Error()
	}
	return string(data)
}

// secMountPoints parses mountinfo text into its mount points.
func secMountPoints(text string) []string {
	mounts, err := mountinfo.GetMountsFromReader(strings.NewReader(text), nil)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range mounts {
		out = append(out, m.Mountpoint)
	}
	return out
}

// secHostMountsUnder lists the test process's mount points at or below dir.
func secHostMountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mp := range secMountPoints(string(data)) {
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// secMountsBelow lists the test process's mount points strictly below dir.
func secMountsBelow(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	for _, mp := range secHostMountsUnder(t, dir) {
		if mp != dir {
			out = append(out, mp)
		}
	}
	return out
}

// secUnmountAllUnder detaches every mount at or below dir in the test's
// mount namespace, deepest first.
func secUnmountAllUnder(t testing.TB, dir string) {
	for i := 0; i < 64; i++ {
		mps := secHostMountsUnder(t, dir)
		if len(mps) == 0 {
			return
		}
		sort.Slice(mps, func(a, b int) bool { return len(mps[a]) > len(mps[b]) })
		for _, mp := range mps {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
}

// secListTree lists the paths (relative) of everything below dir.
func secListTree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel)
		return nil
	})
	sort.Strings(out)
	return out
}

// secKV returns the value of the first "key=value" line.
func secKV(out, key string) (string, bool) {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// secSection returns the text between "=== name" and the next "=== " line.
func secSection(out, name string) string {
	_, rest, ok := strings.Cut(out, "=== "+name+"\n")
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "=== "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// ----------------------------------------------------------------------------
// 1. CVE-2019-5736: overwrite the runtime binary through /proc/<pid>/exe.

// TestSecurityRuntimeBinaryOverwrite makes the container's /bin/evil a
// script whose interpreter is #!/proc/self/exe, so `berth runtime exec <id>
// /bin/evil` makes the kernel run the runtime's own binary inside the
// container (this is how runc was attacked; the image gets the binary's
// ELF interpreter and libraries, as any glibc image has them). Meanwhile the
// container's init loops over /proc, opens /proc/<pid>/exe (O_PATH) of every
// process running the runtime binary and tries to open it for writing,
// directly and by reopening /proc/self/fd/N once the process has exited (the
// kernel refuses with ETXTBSY while it runs). The runtime under attack is a
// copy of bin/berth in a temp dir, so a successful attack only destroys the
// copy.
func TestSecurityRuntimeBinaryOverwrite(t *testing.T) {
	realBin := berthBin(t)
	binDir := t.TempDir()
	victim := filepath.Join(binDir, "berth")
	data, err := os.ReadFile(realBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, data, 0o755); err != nil {
		t.Fatal(err)
	}
	realSum := secSha256(t, realBin)
	before := secSha256(t, victim)
	var victimSt unix.Stat_t
	if err := unix.Stat(victim, &victimSt); err != nil {
		t.Fatal(err)
	}
	// Registered after binDir: runs before it is removed. The runtime may
	// have made protective mounts of the copy (e.g. a read-only bind under
	// /run/berth); leave none behind.
	t.Cleanup(func() {
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		for _, mp := range secMountPoints(string(mi)) {
			var st unix.Stat_t
			if unix.Stat(mp, &st) == nil && st.Dev == victimSt.Dev && st.Ino == victimSt.Ino && mp != victim {
				unix.Unmount(mp, unix.MNT_DETACH)
				os.Remove(mp)
			}
		}
	})

	// The container runs the copy; cleanup uses the real binary, which
	// still works if the attack destroyed the copy.
	r := &runtimeEnv{t: t, bin: victim, root: t.TempDir()}
	t.Cleanup(func() {
		out, _ := exec.Command(realBin, "runtime", "--root", r.root, "list", "-q").Output()
		for _, id := range strings.Fields(string(out)) {
			exec.Command(realBin, "runtime", "--root", r.root, "delete", "--force", id).Run()
		}
	})

	b := secBundle(t, r, "/bin/probe", "attack-exe", "15s", "/tmp/stop-attack", fmt.Sprintf("%d:%d", victimSt.Dev, victimSt.Ino))
	if err := os.WriteFile(b.rootfs("bin/evil"), []byte("#!/proc/self/exe\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A real image has a libc: let the (dynamically linked) runtime binary
	// run inside the container, or the kernel stops at its ELF interpreter.
	secCopyELFDeps(t, victim, b.rootfs(""))
	id := uniqueID(t)
	logPath := secCreateStart(t, r, b, id)
	secWaitFile(t, logPath, "attacker ready", 10*time.Second)

	ranRuntime := false
	var execOut []string
	for i := 0; i < 8; i++ {
		so, se, code := secRuntime(t, r, 15*time.Second, nil, "exec", id, "/bin/evil")
		execOut = append(execOut, fmt.Sprintf("exec #%d: exit %d: %s%s", i, code, so, se))
		// The runtime's CLI complaining about its argv proves the kernel
		// ran the runtime binary inside the container.
		if strings.Contains(so+se, `unknown command "/bin/evil"`) {
			ranRuntime = true
		}
		log, _ := os.ReadFile(logPath)
		if strings.Contains(string(log), "WROTE") || strings.Contains(string(log), "write-failed") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.WriteFile(b.rootfs("tmp/stop-attack"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	log := secWaitFile(t, logPath, "attacker done", 15*time.Second)
	t.Logf("attacker log:\n%s", log)
	t.Logf("exec results:\n%s", strings.Join(execOut, "\n"))

	after := secSha256(t, victim)
	if after != before || strings.Contains(log, "WROTE") {
		t.Errorf("CVE-2019-5736: a process in the container overwrote the runtime binary on the host "+
			"(sha256 %s -> %s). The init/exec process runs the host binary itself (/proc/self/exe), which the "+
			"container reaches through /proc/<pid>/exe; it must run a sealed memfd copy or a read-only "+
			"bind mount of it instead.\nattacker log:\n%s", before, after, log)
	}
	if got := secSha256(t, realBin); got != realSum {
		t.Errorf("the real runtime binary %s changed during the test (sha256 %s -> %s)", realBin, realSum, got)
	}
	// The attack must really have been staged.
	if !ranRuntime {
		t.Errorf("set-up failed: the #!/proc/self/exe script never ran the runtime binary inside the container:\n%s", strings.Join(execOut, "\n"))
	}
	if !strings.Contains(log, "target pid=") {
		// Not an escape, but the attack was not tried: every runtime
		// process hid its binary (non-dumpable), or the attacker no
		// longer recognises what the runtime runs.
		t.Errorf("set-up failed: the attacker never found a runtime process's binary to write to:\n%s", log)
	} else if !strings.Contains(log, "write-failed") && !strings.Contains(log, "WROTE") {
		t.Errorf("the attacker found the runtime binary but never completed a write attempt:\n%s", log)
	}
}

// ----------------------------------------------------------------------------
// 2. CVE-2024-21626: host fds and a cwd outside the root.

type secFD struct {
	num    int
	kind   string // dir, reg, fifo, sock, chr, other
	target string
}

func secParseFDs(t testing.TB, out string) []secFD {
	t.Helper()
	if !strings.Contains(out, "fds-end") {
		t.Fatalf("probe fds did not finish:\n%s", out)
	}
	var fds []secFD
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(line, " ", 4)
		if len(f) != 4 || f[0] != "fd" {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("bad probe line %q", line)
		}
		fds = append(fds, secFD{n, f[2], f[3]})
	}
	return fds
}

// secCheckFDs asserts the process had exactly 0, 1, 2 and the preserved
// fds 3..3+len(preserved)-1, the latter pointing at the given host files.
// Stdio is whatever the caller gave (pipes, files, /dev/null) but never a
// directory: a directory fd is how CVE-2024-21626 reached the host.
func secCheckFDs(t *testing.T, how string, fds []secFD, preserved []string) {
	t.Helper()
	want := 3 + len(preserved)
	got := map[int]secFD{}
	for _, fd := range fds {
		got[fd.num] = fd
	}
	for _, fd := range fds {
		if fd.num >= want {
			t.Errorf("%s: fd %d (%s -> %s) leaked into the container (expected only 0-%d)", how, fd.num, fd.kind, fd.target, want-1)
		}
	}
	for n := 0; n < want; n++ {
		fd, ok := got[n]
		if !ok {
			t.Errorf("%s: fd %d missing in the container: %v", how, n, fds)
			continue
		}
		if n < 3 {
			if fd.kind == "dir" {
				t.Errorf("%s: stdio fd %d is a directory (%s)", how, n, fd.target)
			}
			continue
		}
		if filepath.Base(fd.target) != filepath.Base(preserved[n-3]) {
			t.Errorf("%s: preserved fd %d points to %s, want %s", how, n, fd.target, preserved[n-3])
		}
	}
	t.Logf("%s: fds %v", how, fds)
}

func secPreservedFiles(t *testing.T, n int) ([]*os.File, []string) {
	t.Helper()
	dir := t.TempDir()
	var files []*os.File
	var names []string
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("preserved-%d", i))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files = append(files, f)
		names = append(names, p)
	}
	return files, names
}

// TestSecurityNoHostFDs lists /proc/self/fd from inside containers started
// every way the CLI offers (run, create+start, exec, with and without
// --preserve-fds): only stdio and the preserved fds may be there.
func TestSecurityNoHostFDs(t *testing.T) {
	r := newRuntime(t)
	b := secBundle(t, r, "/bin/probe", "fds")

	// run, attached.
	out, errOut, code := r.runOutput(b, uniqueID(t))
	if code != 0 {
		t.Fatalf("run: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	secCheckFDs(t, "run", secParseFDs(t, out), nil)

	// run --preserve-fds 2.
	files, names := secPreservedFiles(t, 2)
	out, errOut, code = secRuntime(t, r, 20*time.Second, files, "run", "--preserve-fds", "2", "--bundle", b.Dir, uniqueID(t))
	if code != 0 {
		t.Fatalf("run --preserve-fds: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	secCheckFDs(t, "run --preserve-fds 2", secParseFDs(t, out), names)

	// create + start (the path containerd takes: the init waits on the
	// exec fifo holding the state directory open).
	id := uniqueID(t)
	logPath := secCreateStart(t, r, b, id)
	log := secWaitFile(t, logPath, "fds-end", 10*time.Second)
	secCheckFDs(t, "create+start", secParseFDs(t, log), nil)

	// exec, with and without preserved fds, into a running container.
	b2 := secBundle(t, r, "sleep", "60")
	id2 := uniqueID(t)
	secCreateStart(t, r, b2, id2)
	out, errOut, code = secRuntime(t, r, 20*time.Second, nil, "exec", id2, "/bin/probe", "fds")
	if code != 0 {
		t.Fatalf("exec: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	secCheckFDs(t, "exec", secParseFDs(t, out), nil)
	files, names = secPreservedFiles(t, 3)
	out, errOut, code = secRuntime(t, r, 20*time.Second, files, "exec", "--preserve-fds", "3", id2, "/bin/probe", "fds")
	if code != 0 {
		t.Fatalf("exec --preserve-fds: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	secCheckFDs(t, "exec --preserve-fds 3", secParseFDs(t, out), names)
}

// secMarkerCandidates are host directories a cwd escaping through a leaked
// fd could land in (where the runtime has directories open): the state
// directory, the bundle, the runtime binary's directory, and the usual
// roots.
func secMarkerCandidates(r *runtimeEnv, b *bundle) []string {
	cands := []string{"/", "/tmp", "/run", "/run/berth", "/dev", "/dev/shm", "/root", filepath.Dir(r.bin), b.Dir, filepath.Dir(b.Dir), r.root}
	if wd, err := os.Getwd(); err == nil {
		cands = append(cands, wd)
	}
	entries, _ := os.ReadDir(r.root)
	for _, e := range entries {
		cands = append(cands, filepath.Join(r.root, e.Name()))
	}
	return cands
}

func secCheckMarker(t *testing.T, how string, cands []string, marker string) {
	t.Helper()
	for _, dir := range cands {
		p := filepath.Join(dir, marker)
		if _, err := os.Lstat(p); err == nil {
			os.Remove(p)
			t.Errorf("%s: the container created %s on the host: process.cwd escaped the container's root", how, p)
		}
	}
}

// secCheckCwdResult judges one probe run with an attacker-chosen cwd: the
// runtime must refuse it, or the process's cwd must be inside its root.
func secCheckCwdResult(t *testing.T, how string, out string, code int) {
	t.Helper()
	cwd, ok := secKV(out, "cwd")
	if code != 0 && !ok {
		return // refused before the process ran: safe
	}
	if !ok {
		t.Errorf("%s: exit 0 but the probe printed nothing:\n%s", how, out)
		return
	}
	if !strings.HasPrefix(cwd, "/") {
		t.Errorf("%s: the container process's cwd is outside its root (getcwd: %q):\n%s", how, cwd, out)
	}
}

// TestSecurityCwdThroughLeakedFD sets process.cwd (and exec --cwd) to
// /proc/self/fd/N for N in 3..10: if the runtime had a host directory open
// as fd N when it chdir'ed, the process would start with a cwd on the host
// (runc's CVE-2024-21626). The process reports getcwd(2), which the kernel
// prefixes with "(unreachable)" for a directory outside the root, and
// creates a marker file relative to its cwd, which must not appear on the
// host.
func TestSecurityCwdThroughLeakedFD(t *testing.T) {
	r := newRuntime(t)
	var cwds []string
	for n := 3; n <= 10; n++ {
		cwds = append(cwds, fmt.Sprintf("/proc/self/fd/%d", n))
	}
	cwds = append(cwds, "/proc/thread-self/fd/3", "/proc/1/fd/4", "/proc/self/cwd", "/proc/self/root/..", "/proc/1/cwd/..")
	// The image's own symlink to an fd of whoever resolves it.
	for n := 3; n <= 10; n++ {
		cwds = append(cwds, fmt.Sprintf("/work-link-fd-%d", n))
	}
	for i, cwd := range cwds {
		marker := fmt.Sprintf("berth-cwd-escape-run-%d-%d", i, time.Now().UnixNano())
		b := secBundle(t, r, "/bin/probe", "cwd", marker)
		b.Spec.Process.Cwd = cwd
		if n, ok := strings.CutPrefix(cwd, "/work-link-fd-"); ok {
			if err := os.Symlink("/proc/self/fd/"+n, b.rootfs(cwd)); err != nil {
				t.Fatal(err)
			}
		}
		b.save(t)
		out, errOut, code := r.runOutput(b, uniqueID(t))
		how := "run with process.cwd=" + cwd
		t.Logf("%s: exit %d: %s%s", how, code, out, errOut)
		secCheckCwdResult(t, how, out, code)
		secCheckMarker(t, how, secMarkerCandidates(r, b), marker)
	}

	b := secBundle(t, r, "sleep", "60")
	id := uniqueID(t)
	secCreateStart(t, r, b, id)
	for n := 3; n <= 10; n++ {
		marker := fmt.Sprintf("berth-cwd-escape-exec-%d-%d", n, time.Now().UnixNano())
		how := fmt.Sprintf("exec --cwd /proc/self/fd/%d", n)
		out, errOut, code := secRuntime(t, r, 20*time.Second, nil, "exec", "--cwd", fmt.Sprintf("/proc/self/fd/%d", n), id, "/bin/probe", "cwd", marker)
		t.Logf("%s: exit %d: %s%s", how, code, out, errOut)
		secCheckCwdResult(t, how, out, code)
		secCheckMarker(t, how, secMarkerCandidates(r, b), marker)

		// The container plants /work-N -> /proc/self/fd/N and waits for
		// someone to exec with --cwd /work-N.
		link := fmt.Sprintf("/work-%d", n)
		if so, se, c := secRuntime(t, r, 20*time.Second, nil, "exec", id, "ln", "-sf", fmt.Sprintf("/proc/self/fd/%d", n), link); c != 0 {
			t.Fatalf("set-up: plant %s: %s%s", link, so, se)
		}
		how = fmt.Sprintf("exec --cwd %s (a symlink the container made to /proc/self/fd/%d)", link, n)
		out, errOut, code = secRuntime(t, r, 20*time.Second, nil, "exec", "--cwd", link, id, "/bin/probe", "cwd", marker+"-link")
		t.Logf("%s: exit %d: %s%s", how, code, out, errOut)
		secCheckCwdResult(t, how, out, code)
		secCheckMarker(t, how, secMarkerCandidates(r, b), marker+"-link")
	}
	// A host directory handed over with --preserve-fds: the process may
	// use the fd, but the runtime must not start it with its cwd there
	// (the check that the cwd is inside the root, right before execve).
	hostDir := t.TempDir()
	dirFD, err := os.Open(hostDir)
	if err != nil {
		t.Fatal(err)
	}
	defer dirFD.Close()
	marker := fmt.Sprintf("berth-cwd-escape-preserved-%d", time.Now().UnixNano())
	out, errOut, code := secRuntime(t, r, 20*time.Second, []*os.File{dirFD}, "exec", "--preserve-fds", "1", "--cwd", "/proc/self/fd/3", id, "/bin/probe", "cwd", marker)
	how := "exec --preserve-fds 1 (a host dir) --cwd /proc/self/fd/3"
	t.Logf("%s: exit %d: %s%s", how, code, out, errOut)
	secCheckCwdResult(t, how, out, code)
	secCheckMarker(t, how, append(secMarkerCandidates(r, b), hostDir), marker)

	// The same in a container without a mount namespace (chroot).
	b2 := secBundle(t, r, "sleep", "60")
	secDropNamespace(b2.Spec, specs.MountNamespace)
	b2.save(t)
	id2 := uniqueID(t)
	secCreateStart(t, r, b2, id2)
	for _, cwd := range []string{"/proc/self/fd/3", "/proc/self/fd/4", "/proc/self/cwd", "/proc/self/root/.."} {
		marker := fmt.Sprintf("berth-cwd-escape-chroot-%d", time.Now().UnixNano())
		out, errOut, code := secRuntime(t, r, 20*time.Second, []*os.File{dirFD}, "exec", "--preserve-fds", "1", "--cwd", cwd, id2, "/bin/probe", "cwd", marker)
		how := "no mount namespace: exec --preserve-fds 1 (a host dir) --cwd " + cwd
		t.Logf("%s: exit %d: %s%s", how, code, out, errOut)
		secCheckCwdResult(t, how, out, code)
		secCheckMarker(t, how, append(secMarkerCandidates(r, b2), hostDir), marker)
	}
}

// ----------------------------------------------------------------------------
// 3. CVE-2021-30465: mount destinations that are symlinks out of the rootfs.

// secSharedHostDir makes a host temp dir a shared mount point, so that a
// mount the runtime wrongly makes there from the container's mount
// namespace (made rshared by rootfsPropagation) would propagate back and be
// seen in the test's own mountinfo.
func secSharedHostDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s: %v", dir, err)
	}
	t.Cleanup(func() { secUnmountAllUnder(t, dir) })
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatalf("make %s shared: %v", dir, err)
	}
	return dir
}

// TestSecurityMountDestinationSymlinks plants symlinks pointing out of the
// rootfs (absolute to a host path, relative with enough "../" to climb
// out, absolute with "/etc/../../..") and uses them as mount destinations,
// for a tmpfs, a directory bind and a file bind. "shadowed": the same path
// also exists inside the rootfs, so in-root resolution succeeds and the
// mounts must land there. "dangling": only the host path exists; the
// runtime may refuse the mount or create the path in the rootfs. Either
// way the host directory gets no new file and no new mount (it is a shared
// mount and the container propagates rshared, so a mount made there from
// the container's namespace would show on the host). Destinations through
// procfs magic links (/proc/self/root, /proc/1/root, /proc/self/cwd, which
// are host paths while the rootfs is set up) are tried too.
func TestSecurityMountDestinationSymlinks(t *testing.T) {
	for _, shadowed := range []bool{true, false} {
		for _, noMount := range []bool{false, true} {
			name := "dangling"
			if shadowed {
				name = "shadowed"
			}
			if noMount {
				// No mount namespace: the rootfs is set up in the host's
				// and a mount that escapes lands on the host directly.
				name += "-no-mount-namespace"
			}
			t.Run(name, func(t *testing.T) { secMountSymlinkCase(t, shadowed, noMount) })
		}
	}
	t.Run("procfs-magic-links", func(t *testing.T) { secMountMagicLinkCase(t, false) })
	t.Run("procfs-magic-links-no-mount-namespace", func(t *testing.T) { secMountMagicLinkCase(t, true) })
}

func secMountSymlinkCase(t *testing.T, shadowed, noMount bool) {
	r := newRuntime(t)
	hostBase := secSharedHostDir(t)
	hostA := filepath.Join(hostBase, "a")
	hostB := filepath.Join(hostBase, "b")
	hostC := filepath.Join(hostBase, "c")
	for _, d := range []string{hostA, hostB, hostC} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	victim := filepath.Join(hostC, "victim")
	if err := os.WriteFile(victim, []byte("host original\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srcDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(srcDir, "payload"), []byte("from bind source\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srcFile := filepath.Join(t.TempDir(), "srcfile")
	if err := os.WriteFile(srcFile, []byte("bound file content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	treeBefore := secListTree(t, hostBase)

	script := `echo "=== mountinfo"; cat /proc/self/mountinfo
echo "=== lnk2"; cat /lnk2
echo "=== lnksub"; ls /lnk/sub
echo "=== mntsub"; echo inside > /mnt/sub/written && echo written-ok
echo "=== end"`
	b := secBundle(t, r, "sh", "-c", script)
	up := strings.Repeat("../", 24)
	for link, target := range map[string]string{
		"mnt":   hostA,                           // absolute, to a host dir
		"lnk":   up + hostB[1:],                  // relative, climbing out
		"lnk2":  victim,                          // absolute, to a host file
		"etc/x": "/etc/../../../../" + hostB[1:], // absolute with ..
	} {
		if err := os.Symlink(target, b.rootfs(link)); err != nil {
			t.Fatal(err)
		}
	}
	if shadowed {
		for _, d := range []string{hostA, hostB, hostC} {
			if err := os.MkdirAll(b.rootfs(d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(b.rootfs(victim), []byte("image original\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if noMount {
		secDropNamespace(b.Spec, specs.MountNamespace)
	} else {
		b.Spec.Linux.RootfsPropagation = "rshared"
	}
	b.Spec.Mounts = append(b.Spec.Mounts,
		specs.Mount{Destination: "/mnt/sub", Type: "tmpfs", Source: "tmpfs"},
		specs.Mount{Destination: "/lnk/sub", Type: "bind", Source: srcDir, Options: []string{"rbind"}},
		specs.Mount{Destination: "/lnk2", Type: "bind", Source: srcFile, Options: []string{"bind"}},
		specs.Mount{Destination: "/etc/x/viasymlinkdots", Type: "tmpfs", Source: "tmpfs"},
	)
	b.save(t)
	out, errOut, code := r.runOutput(b, uniqueID(t))

	// Outside: nothing new, nothing mounted, whatever the runtime did.
	if got := secListTree(t, hostBase); strings.Join(got, ",") != strings.Join(treeBefore, ",") {
		t.Errorf("the host directory %s changed: %v -> %v", hostBase, treeBefore, got)
	}
	if data := secReadFile(victim); data != "host original\n" {
		t.Errorf("host file %s changed: %q", victim, data)
	}
	if mps := secHostMountsUnder(t, hostBase); len(mps) != 1 {
		t.Errorf("mounts appeared on the host under %s: %v", hostBase, mps)
	}

	if code != 0 {
		if shadowed {
			t.Fatalf("run: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		// A dangling symlink as a mount destination: refusing is safe.
		t.Logf("refused (safe): %s", strings.TrimSpace(errOut))
		return
	}
	// Inside: each mount is where the symlink leads when resolved in the
	// rootfs: the host path's name under the container's root.
	mps := secMountPoints(secSection(out, "mountinfo"))
	for _, want := range []string{hostA + "/sub", hostB + "/sub", victim, hostB + "/viasymlinkdots"} {
		found := false
		for _, mp := range mps {
			if mp == want {
				found = true
			}
		}
		if !found {
			t.Errorf("no mount on %s inside the container (the symlinked destination was not mounted in the rootfs); mounts: %v", want, mps)
		}
		if _, err := os.Lstat(b.rootfs(want)); err != nil {
			t.Errorf("the mount point %s is not inside the rootfs: %v", b.rootfs(want), err)
		}
	}
	if got := secSection(out, "lnk2"); got != "bound file content\n" {
		t.Errorf("/lnk2 in the container reads %q, want the bind source's content", got)
	}
	if got := secSection(out, "lnksub"); !strings.Contains(got, "payload") {
		t.Errorf("/lnk/sub in the container lists %q, want the bind source's payload", got)
	}
	if !strings.Contains(secSection(out, "mntsub"), "written-ok") {
		t.Errorf("could not write to the tmpfs on /mnt/sub: %q", secSection(out, "mntsub"))
	}
	if shadowed {
		if data := secReadFile(b.rootfs(victim)); data != "image original\n" {
			t.Errorf("the image's file under the bind mount changed: %q", data)
		}
	}
}

func secMountMagicLinkCase(t *testing.T, noMount bool) {
	r := newRuntime(t)
	hostBase := secSharedHostDir(t)
	hostA := filepath.Join(hostBase, "a")
	if err := os.Mkdir(hostA, 0o755); err != nil {
		t.Fatal(err)
	}
	treeBefore := secListTree(t, hostBase)
	for _, dest := range []string{
		"/proc/self/root" + hostA + "/viaprocroot",
		"/proc/1/root" + hostA + "/viaproc1root",
		"/proc/self/cwd/viaproccwd",
		"/proc/self/fd/3/viaprocfd",
	} {
		b := secBundle(t, r, "sh", "-c", `echo "=== mountinfo"; cat /proc/self/mountinfo; echo "=== end"`)
		if noMount {
			secDropNamespace(b.Spec, specs.MountNamespace)
		} else {
			b.Spec.Linux.RootfsPropagation = "rshared"
		}
		b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: dest, Type: "tmpfs", Source: "tmpfs"})
		b.save(t)
		out, errOut, code := r.runOutput(b, uniqueID(t))
		t.Logf("mount on %s: exit %d: %s", dest, code, strings.TrimSpace(errOut))
		if code == 0 && !strings.Contains(out, "=== end") {
			t.Errorf("mount on %s: container did not run to the end:\n%s", dest, out)
		}
		if got := secListTree(t, hostBase); strings.Join(got, ",") != strings.Join(treeBefore, ",") {
			t.Errorf("mount on %s: the host directory %s changed: %v -> %v", dest, hostBase, treeBefore, got)
		}
		if mps := secHostMountsUnder(t, hostBase); len(mps) != 1 {
			t.Errorf("mount on %s: mounts appeared on the host under %s: %v", dest, hostBase, mps)
		}
		for _, d := range []string{b.Dir, "/", filepath.Dir(r.bin), r.root} {
			for _, name := range []string{"viaproccwd", "viaprocfd"} {
				if _, err := os.Lstat(filepath.Join(d, name)); err == nil {
					os.Remove(filepath.Join(d, name))
					t.Errorf("mount on %s created %s on the host", dest, filepath.Join(d, name))
				}
			}
		}
	}
}

// ----------------------------------------------------------------------------
// 4. CVE-2025-31133: the image's /dev/null replaced to defeat masking.

// TestSecurityMaskedPathsDevNullSymlink replaces the image's /dev/null with
// a symlink (to /proc/sys/kernel/core_pattern, and to a host file) and, in
// another form, the whole /dev with a symlink to a host directory, with and
// without the config's tmpfs on /dev. Masked files (linux.maskedPaths plus
// an image file added to it) must still be the null device in the
// container, read empty and swallow writes, and nothing on the host may
// change (not core_pattern, not the host file, not the host directory).
func TestSecurityMaskedPathsDevNullSymlink(t *testing.T) {
	corePattern, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if now, _ := os.ReadFile("/proc/sys/kernel/core_pattern"); !bytes.Equal(now, corePattern) {
			os.WriteFile("/proc/sys/kernel/core_pattern", corePattern, 0)
		}
	})
	if timerList, _ := os.ReadFile("/proc/timer_list"); len(timerList) == 0 {
		t.Fatalf("set-up: /proc/timer_list is empty on the host: the mask could not be told from the file")
	}
	hostDir := secSharedHostDir(t)
	hostFile := filepath.Join(hostDir, "host-secret")
	if err := os.WriteFile(hostFile, []byte("HOST-SECRET\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	script := `echo "=== stat"; stat -c '%n %F %t:%T' /etc/masked /proc/timer_list
echo "=== sizes"; echo "masked=$(wc -c < /etc/masked)"; echo "timer_list=$(wc -c < /proc/timer_list)"
echo "=== write"; echo berth-pwned-core > /etc/masked; echo "rc=$?"; echo "masked-after=$(wc -c < /etc/masked)"
echo "=== end"`
	cases := []struct {
		name     string
		devTmpfs bool
		devLink  bool // the whole /dev is a symlink to a host dir
		shadowed bool // with devLink: the same path exists in the rootfs
		nullTo   string
		race     bool // keep swapping the image's /dev/null for the symlink during create
		noMount  bool // no mount namespace: masks are made in the host's
	}{
		{name: "null-to-core_pattern-with-dev-tmpfs", devTmpfs: true, nullTo: "/proc/sys/kernel/core_pattern"},
		{name: "null-to-core_pattern-image-dev", nullTo: "/proc/sys/kernel/core_pattern"},
		{name: "null-to-host-file-image-dev", nullTo: hostFile},
		{name: "null-to-host-file-relative-image-dev", nullTo: strings.Repeat("../", 24) + hostFile[1:]},
		{name: "dev-to-host-dir-shadowed-image-dev", devLink: true, shadowed: true},
		{name: "dev-to-host-dir-dangling-image-dev", devLink: true},
		{name: "null-swapped-to-host-file-during-create-image-dev", nullTo: hostFile, race: true},
		{name: "null-swapped-to-core_pattern-during-create-image-dev", nullTo: "/proc/sys/kernel/core_pattern", race: true},
		{name: "null-to-host-file-image-dev-no-mount-namespace", nullTo: hostFile, noMount: true},
		{name: "dev-to-host-dir-shadowed-image-dev-no-mount-namespace", devLink: true, shadowed: true, noMount: true},
		{name: "null-swapped-to-host-file-during-create-no-mount-namespace", nullTo: hostFile, race: true, noMount: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A successful attack changes the host's core_pattern: put it
			// back at once so the next case starts clean.
			t.Cleanup(func() {
				if now, _ := os.ReadFile("/proc/sys/kernel/core_pattern"); !bytes.Equal(now, corePattern) {
					os.WriteFile("/proc/sys/kernel/core_pattern", corePattern, 0)
				}
				for _, mp := range secMountsBelow(t, hostDir) {
					unix.Unmount(mp, unix.MNT_DETACH)
				}
				if secReadFile(hostFile) != "HOST-SECRET\n" {
					os.Remove(hostFile)
					os.WriteFile(hostFile, []byte("HOST-SECRET\n"), 0o644)
				}
			})
			r := newRuntime(t)
			hostDev := secSharedHostDir(t)
			b := secBundle(t, r, "sh", "-c", script)
			if tc.noMount {
				secDropNamespace(b.Spec, specs.MountNamespace)
			} else {
				b.Spec.Linux.RootfsPropagation = "rshared"
			}
			if err := os.WriteFile(b.rootfs("etc/masked"), []byte("IMAGE-SECRET\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.devLink {
				if err := os.RemoveAll(b.rootfs("dev")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(hostDev, b.rootfs("dev")); err != nil {
					t.Fatal(err)
				}
				if tc.shadowed {
					if err := os.MkdirAll(b.rootfs(hostDev), 0o755); err != nil {
						t.Fatal(err)
					}
				}
			} else if err := os.Symlink(tc.nullTo, b.rootfs("dev/null")); err != nil {
				t.Fatal(err)
			}
			if !tc.devTmpfs {
				secRemoveMount(b.Spec, "/dev")
			}
			b.Spec.Linux.MaskedPaths = append(b.Spec.Linux.MaskedPaths, "/etc/masked")
			b.save(t)
			// The host, whatever happened.
			checkHost := func() {
				t.Helper()
				if now, _ := os.ReadFile("/proc/sys/kernel/core_pattern"); !bytes.Equal(now, corePattern) {
					t.Errorf("the host's kernel.core_pattern changed: %q -> %q", corePattern, now)
				}
				if data := secReadFile(hostFile); data != "HOST-SECRET\n" {
					t.Errorf("host file %s changed: %q", hostFile, data)
				}
				if fi, err := os.Lstat(hostFile); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("host file %s is no longer a regular file: %v %v", hostFile, fi, err)
				}
				if got := secListTree(t, hostDev); len(got) != 0 {
					t.Errorf("the runtime created files in the host directory the image's /dev points to: %v", got)
				}
				if got := secListTree(t, hostDir); len(got) != 1 {
					t.Errorf("the runtime created files next to the host file the image's /dev/null points to: %v", got)
				}
				for _, d := range []string{hostDir, hostDev} {
					if mps := secMountsBelow(t, d); len(mps) != 0 {
						t.Errorf("mounts on the host under %s: %v", d, mps)
					}
				}

			}
			if tc.race {
				secRaceDevNull(t, r, b, tc.nullTo, script)
				checkHost()
				return
			}
			out, errOut, code := r.runOutput(b, uniqueID(t))
			checkHost()

			if code != 0 || !strings.Contains(out, "=== end") {
				if tc.devLink && !tc.shadowed && code != 0 {
					t.Logf("refused (safe): %s", strings.TrimSpace(errOut))
					return
				}
				t.Fatalf("run: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			st := secSection(out, "stat")
			for _, p := range []string{"/etc/masked", "/proc/timer_list"} {
				if !strings.Contains(st, p+" character special file 1:3") {
					t.Errorf("masked %s is not the null device (1:3) in the container:\n%s", p, st)
				}
			}
			sizes := secSection(out, "sizes")
			if !strings.Contains(sizes, "masked=0\n") || !strings.Contains(sizes, "timer_list=0\n") {
				t.Errorf("masked files are readable in the container:\n%s", sizes)
			}
			if w := secSection(out, "write"); !strings.Contains(w, "masked-after=0\n") {
				t.Errorf("a write to the masked file stuck:\n%s", w)
			}
			if data, _ := os.ReadFile(b.rootfs("etc/masked")); string(data) != "IMAGE-SECRET\n" {
				t.Errorf("the masked image file was written through the mask: %q", data)
			}
			if tc.shadowed {
				// Set-up check: the runtime's /dev really is the symlink's
				// in-root target.
				if _, err := os.Lstat(b.rootfs(hostDev + "/zero")); err != nil {
					t.Errorf("set-up: the devices were not created in the rootfs's %s: %v", hostDev, err)
				}
			}
		})
	}
}

// secRaceDevNull runs the container several times while another process
// (think: a second container sharing this rootfs) keeps replacing the
// image's /dev/null with a symlink to target, so that whatever the runtime
// created there may be swapped before the masks are applied. Runs the race
// breaks may fail; runs that start must show the masks intact.
func secRaceDevNull(t *testing.T, r *runtimeEnv, b *bundle, target, script string) {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		swaps := 0
		tmp := b.rootfs("dev/.null-swap")
		for {
			select {
			case <-stop:
				done <- swaps
				return
			default:
			}
			os.Remove(tmp)
			if os.Symlink(target, tmp) == nil && os.Rename(tmp, b.rootfs("dev/null")) == nil {
				swaps++
			}
		}
	}()
	started := 0
	for i := 0; i < 6; i++ {
		out, errOut, code := r.runOutput(b, uniqueID(t))
		if code != 0 || !strings.Contains(out, "=== end") {
			t.Logf("run %d did not start (race): exit %d: %s", i, code, strings.TrimSpace(errOut))
			continue
		}
		started++
		st := secSection(out, "stat")
		for _, p := range []string{"/etc/masked", "/proc/timer_list"} {
			if !strings.Contains(st, p+" character special file 1:3") {
				t.Errorf("run %d: masked %s is not the null device (1:3) in the container:\n%s", i, p, st)
			}
		}
		if sizes := secSection(out, "sizes"); !strings.Contains(sizes, "masked=0\n") || !strings.Contains(sizes, "timer_list=0\n") {
			t.Errorf("run %d: masked files are readable in the container:\n%s", i, sizes)
		}
		if w := secSection(out, "write"); !strings.Contains(w, "masked-after=0\n") {
			t.Errorf("run %d: a write to the masked file stuck:\n%s", i, w)
		}
	}
	close(stop)
	swaps := <-done
	t.Logf("%d of 6 runs started; /dev/null swapped %d times", started, swaps)
	if swaps == 0 {
		t.Errorf("set-up: the racer never swapped /dev/null")
	}
	if started == 0 {
		t.Logf("no run started while /dev/null was being swapped (the runtime refused each time: safe)")
	}
	if data, _ := os.ReadFile(b.rootfs("etc/masked")); string(data) != "IMAGE-SECRET\n" {
		t.Errorf("the masked image file was written through the mask: %q", data)
	}
}

// ----------------------------------------------------------------------------
// 5. CVE-2025-52565: /dev/console and /dev/pts planted as symlinks.

type secConsole struct {
	master *os.File
	name   string
	err    error
}

// secConsoleSocket listens on a unix socket like a shim's --console-socket
// and receives one pty master (SCM_RIGHTS).
func secConsoleSocket(t *testing.T) (string, <-chan secConsole) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan secConsole, 1)
	go func() {
		conn, err := ln.AcceptUnix()
		if err != nil {
			ch <- secConsole{err: err}
			return
		}
		defer conn.Close()
		buf := make([]byte, 4096)
		oob := make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			ch <- secConsole{err: err}
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			ch <- secConsole{err: fmt.Errorf("no control message: %v", err)}
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			ch <- secConsole{err: fmt.Errorf("no fd: %v", err)}
			return
		}
		ch <- secConsole{master: os.NewFile(uintptr(fds[0]), "pty-master"), name: string(buf[:n])}
	}()
	return path, ch
}

// TestSecurityConsoleSymlink plants /dev/console as a symlink to a host file
// (absolute, and relative with ../ to climb out) and /dev/pts as a symlink
// to a host directory, in an image whose /dev is used as is (no tmpfs), and
// runs with process.terminal and --console-socket. "shadowed": the same
// paths exist inside the rootfs, so the container must start and the pty be
// bound inside it; "dangling": refusing is fine. The host file and
// directory stay untouched either way.
func TestSecurityConsoleSymlink(t *testing.T) {
	hostDir := secSharedHostDir(t)
	victim := filepath.Join(hostDir, "console-victim")
	if err := os.WriteFile(victim, []byte("host original\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	relVictim := strings.Repeat("../", 24) + victim[1:]
	for _, tc := range []struct {
		name      string
		console   string
		ptsToHost bool
		shadowed  bool
	}{
		{"absolute-console-and-pts-shadowed", victim, true, true},
		{"relative-console-shadowed", relVictim, false, true},
		{"absolute-console-dangling", victim, false, false},
		{"relative-console-dangling", relVictim, false, false},
		{"pts-dangling", "", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secConsoleCase(t, hostDir, victim, tc.console, tc.ptsToHost, tc.shadowed)
		})
	}
}

func secConsoleCase(t *testing.T, hostDir, victim, console string, ptsToHost, shadowed bool) {
	r := newRuntime(t)
	hostPts := secSharedHostDir(t)
	// hostDir is shared by the cases: drop what an escape mounted there.
	t.Cleanup(func() {
		for _, mp := range secMountsBelow(t, hostDir) {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	})
	script := `tty; echo "=== mountinfo"; cat /proc/self/mountinfo; echo "=== END-OF-PROBE"`
	b := secBundle(t, r, "sh", "-c", script)
	b.Spec.Process.Terminal = true
	// Both host dirs are shared mounts: a bind the runtime made on them
	// from the container's namespace would propagate back to the host.
	b.Spec.Linux.RootfsPropagation = "rshared"
	secRemoveMount(b.Spec, "/dev")
	if console != "" {
		if err := os.Symlink(console, b.rootfs("dev/console")); err != nil {
			t.Fatal(err)
		}
	}
	if ptsToHost {
		if err := os.Symlink(hostPts, b.rootfs("dev/pts")); err != nil {
			t.Fatal(err)
		}
	}
	if shadowed {
		if err := os.MkdirAll(b.rootfs(hostDir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(b.rootfs(victim), []byte("image original\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(b.rootfs(hostPts), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b.save(t)
	checkHost := func() {
		t.Helper()
		if data := secReadFile(victim); data != "host original\n" {
			t.Errorf("host file %s changed: %q", victim, data)
		}
		if got := secListTree(t, hostDir); len(got) != 1 {
			t.Errorf("files appeared next to the host file: %v", got)
		}
		if got := secListTree(t, hostPts); len(got) != 0 {
			t.Errorf("files appeared in the host dir the image's /dev/pts points to: %v", got)
		}
		for _, d := range []string{hostDir, hostPts} {
			if mps := secMountsBelow(t, d); len(mps) != 0 {
				t.Errorf("mounts appeared on the host under %s: %v", d, mps)
			}
		}
	}
	sock, got := secConsoleSocket(t)
	id := uniqueID(t)
	_, errOut, code := secRuntime(t, r, 20*time.Second, nil, "create", "--bundle", b.Dir, "--console-socket", sock, id)
	if code != 0 {
		checkHost()
		if !shadowed {
			t.Logf("refused (safe): %s", strings.TrimSpace(errOut))
			return
		}
		t.Fatalf("create: exit %d: %s", code, errOut)
	}
	var c secConsole
	select {
	case c = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no pty master arrived on the console socket")
	}
	if c.err != nil {
		t.Fatalf("console socket: %v", c.err)
	}
	defer c.master.Close()
	var mu sync.Mutex
	var buf bytes.Buffer
	go func() {
		chunk := make([]byte, 4096)
		for {
			n, err := c.master.Read(chunk)
			mu.Lock()
			buf.Write(chunk[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	r.run("start", id)
	var out string
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		out = strings.ReplaceAll(buf.String(), "\r", "")
		mu.Unlock()
		if strings.Contains(out, "=== END-OF-PROBE") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkHost()
	if !strings.Contains(out, "=== END-OF-PROBE") {
		t.Fatalf("the container's output never arrived on the pty:\n%s", out)
	}
	if tty := strings.SplitN(out, "\n", 2)[0]; !strings.HasPrefix(tty, "/") {
		t.Errorf("the container's stdio is not the pty (tty printed %q)", tty)
	}
	// Inside: the console bind is on /dev/console or where its symlink
	// leads within the rootfs.
	mps := secMountPoints(secSection(out, "mountinfo"))
	bound := false
	for _, mp := range mps {
		if mp == victim || mp == "/dev/console" {
			bound = true
		}
	}
	if !bound {
		t.Errorf("the pty was not bound onto /dev/console or its in-root target: %v", mps)
	}
	if shadowed {
		if data := secReadFile(b.rootfs(victim)); data != "image original\n" {
			t.Errorf("the image's file under the console bind changed: %q", data)
		}
	}
}

// ----------------------------------------------------------------------------
// 6. CVE-2025-52881: mounts over /proc/sys to redirect linux.sysctl.

// TestSecuritySysctlRedirect mounts a host file over
// /proc/sys/kernel/domainname (and, separately, a tmpfs over /proc/sys) and
// asks for linux.sysctl kernel.domainname: the value must reach the
// container's UTS namespace, not the bind source, and the host's own
// domainname must not change.
func TestSecuritySysctlRedirect(t *testing.T) {
	r := newRuntime(t)
	var hostUts unix.Utsname
	if err := unix.Uname(&hostUts); err != nil {
		t.Fatal(err)
	}
	hostFile := filepath.Join(t.TempDir(), "fake-domainname")
	if err := os.WriteFile(hostFile, []byte("host-file-original\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		mount specs.Mount
		want  string // what /proc/sys/kernel/domainname reads in the container
	}{
		{"bind-host-file-over-domainname", specs.Mount{Destination: "/proc/sys/kernel/domainname", Type: "bind", Source: hostFile, Options: []string{"bind"}}, "host-file-original\n"},
		{"tmpfs-over-proc-sys", specs.Mount{Destination: "/proc/sys", Type: "tmpfs", Source: "tmpfs"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			value := "berth-sysctl-" + strconv.Itoa(int(time.Now().UnixNano()%100000))
			b := secBundle(t, r, "/bin/probe", "uname")
			b.Spec.Mounts = append(b.Spec.Mounts, tc.mount)
			b.Spec.Linux.Sysctl = map[string]string{"kernel.domainname": value}
			b.save(t)
			out, errOut, code := r.runOutput(b, uniqueID(t))
			if code != 0 {
				t.Fatalf("run: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			if got, _ := secKV(out, "domainname"); got != value {
				t.Errorf("the container's domainname is %q, want the sysctl's %q:\n%s", got, value, out)
			}
			if tc.want != "" {
				// The over-mount really is there in the container.
				if got, _ := secKV(out, "procfile"); got != strings.TrimSuffix(tc.want, "\n") {
					t.Errorf("set-up: /proc/sys/kernel/domainname in the container reads %q, want the bind source's %q:\n%s", got, tc.want, out)
				}
			} else if _, ok := secKV(out, "procfile-error"); !ok {
				t.Errorf("set-up: the tmpfs over /proc/sys is not there:\n%s", out)
			}
			if data := secReadFile(hostFile); data != "host-file-original\n" {
				t.Errorf("the sysctl was written to the bind source %s on the host: %q", hostFile, data)
			}
			var now unix.Utsname
			unix.Uname(&now)
			if now.Domainname != hostUts.Domainname {
				t.Errorf("the host's domainname changed to %q", unix.ByteSliceToString(now.Domainname[:]))
			}
		})
	}
}

// ----------------------------------------------------------------------------
// 7. Masked /proc files cannot be unmasked from inside.

// TestSecurityUnmaskProc tries, from a container with the default
// capabilities, to unmount the masks on /proc files, to mount a fresh proc
// elsewhere, to bind /proc elsewhere, and the same (plus a recursive bind
// and a proc of a new pid namespace) from new user, mount and pid
// namespaces where the process is root of its own namespaces. Every attempt
// must fail, or the files must stay masked.
func TestSecurityUnmaskProc(t *testing.T) {
	r := newRuntime(t)
	var masked []string
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"} {
		if _, err := os.Stat(p); err == nil {
			masked = append(masked, filepath.Base(p))
		}
	}
	if timerList, _ := os.ReadFile("/proc/timer_list"); len(timerList) == 0 {
		t.Fatal("set-up: /proc/timer_list is empty on the host; nothing to unmask")
	}
	var sb strings.Builder
	sb.WriteString("mkdir -p /mnt/p /mnt/b\n")
	for _, f := range masked {
		fmt.Fprintf(&sb, "echo \"stat-%[1]s=$(stat -c '%%F %%t:%%T' /proc/%[1]s)\"\n", f)
		fmt.Fprintf(&sb, "umount /proc/%[1]s; echo \"umount-%[1]s=$?\"\n", f)
		fmt.Fprintf(&sb, "umount -l /proc/%[1]s; echo \"umount-lazy-%[1]s=$?\"\n", f)
	}
	sb.WriteString("mount -t proc proc /mnt/p; echo \"mount-proc=$?\"\n")
	sb.WriteString("mount --bind /proc /mnt/b; echo \"bind-proc=$?\"\n")
	for _, f := range masked {
		fmt.Fprintf(&sb, "echo \"after-stat-%[1]s=$(stat -c '%%F %%t:%%T' /proc/%[1]s)\"\n", f)
		fmt.Fprintf(&sb, "echo \"size-%[1]s=$(cat /proc/%[1]s 2>/dev/null | wc -c)\"\n", f)
		fmt.Fprintf(&sb, "echo \"size-newproc-%[1]s=$(cat /mnt/p/%[1]s 2>/dev/null | wc -c)\"\n", f)
		fmt.Fprintf(&sb, "echo \"size-bindproc-%[1]s=$(cat /mnt/b/%[1]s 2>/dev/null | wc -c)\"\n", f)
	}
	sb.WriteString("echo done\n")

	b := secBundle(t, r, "sh", "-c", sb.String())
	b.save(t)
	out, errOut, code := r.runOutput(b, uniqueID(t))
	t.Logf("container output:\n%s\nstderr:\n%s", out, errOut)
	if code != 0 || !strings.Contains(out, "done") {
		t.Fatalf("run: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	kv := func(k string) string {
		v, ok := secKV(out, k)
		if !ok {
			t.Errorf("no %s in the container's output", k)
		}
		return v
	}
	for _, f := range masked {
		if st := kv("stat-" + f); st != "character special file 1:3" {
			t.Errorf("set-up: /proc/%s is not masked in the container (%q)", f, st)
		}
		if st := kv("after-stat-" + f); st != "character special file 1:3" {
			t.Errorf("/proc/%s is no longer masked after the unmask attempts (%q)", f, st)
		}
		for _, k := range []string{"umount-", "umount-lazy-"} {
			if kv(k+f) == "0" {
				t.Errorf("%s/proc/%s succeeded in the container", k, f)
			}
		}
		for _, k := range []string{"size-", "size-newproc-", "size-bindproc-"} {
			if v := kv(k + f); v != "0" {
				t.Errorf("/proc/%s readable in the container after the unmask attempts (%s%s = %s bytes)", f, k, f, v)
			}
		}
	}
	if kv("mount-proc") == "0" {
		t.Errorf("mount -t proc succeeded in a container without CAP_SYS_ADMIN")
	}
	if kv("bind-proc") == "0" {
		t.Errorf("mount --bind /proc succeeded in a container without CAP_SYS_ADMIN")
	}

	// Root of a user namespace of its own: mapping uid 0 into a new user
	// namespace needs CAP_SETFCAP, which the container lacks, so the
	// attacker is an ordinary user (uid 1000) of the container: it makes new
	// user, mount and pid namespaces, where it is root with every
	// capability, and tries again. The masks were made by a more privileged
	// namespace and are locked to the mounts they cover.
	b2 := secBundle(t, r, append([]string{"/bin/probe", "unmask-userns"}, masked...)...)
	b2.Spec.Process.User = specs.User{UID: 1000, GID: 1000}
	b2.save(t)
	for _, d := range []string{"unmask", "unmask/np", "unmask/nb", "unmask/nrb"} {
		if err := os.Mkdir(b2.rootfs(d), 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(b2.rootfs(d), 0o777)
	}
	out, errOut, code = r.runOutput(b2, uniqueID(t))
	t.Logf("nested user namespace attempt: exit %d\n%s%s", code, out, errOut)
	if !strings.Contains(out, "userns-inner-done") {
		t.Fatalf("set-up: could not make a nested user namespace as uid 1000 in the container:\n%s%s", out, errOut)
	}
	if v, _ := secKV(out, "userns-uid"); v != "0" {
		t.Errorf("set-up: the process is not root in its nested user namespace (uid %s)", v)
	}
	views := 0
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, "userns-view ")
		if !ok {
			continue
		}
		views++
		path, v, _ := strings.Cut(rest, "=")
		if v != "null" && !strings.HasPrefix(v, "err:") {
			t.Errorf("%s is unmasked from a nested user namespace after the unmask attempts: %s", path, v)
		}
		if strings.HasPrefix(path, "/proc/") && v != "null" {
			t.Errorf("%s is no longer the mask (1:3) in the nested namespaces: %s", path, v)
		}
	}
	if views != 4*len(masked) {
		t.Errorf("set-up: the probe reported %d views, want %d", views, 4*len(masked))
	}
	for _, f := range masked {
		for _, k := range []string{"userns-umount-", "userns-umount-lazy-"} {
			if v, _ := secKV(out, k+f); v == "<nil>" {
				t.Errorf("%s/proc/%s succeeded in a nested user namespace", k, f)
			}
		}
	}
}

// ----------------------------------------------------------------------------
// 8. The waiting init of a created container (CVE-2016-9962 class).

// TestSecurityCreatedInitProc execs a process into a created, not yet
// started container and has it go after the init, which waits for start
// holding the runtime's fds (the state directory, the exec fifo) and, since
// the process identity is applied before "ready", runs with the container's
// own uid and capabilities, so ptrace rules alone would let the container
// reach it. It must not be able to read or open any of the init's fds, nor
// its cwd, root or exe as something outside the container; a marker
// written through any directory it opens must not appear on the host.
func TestSecurityCreatedInitProc(t *testing.T) {
	for _, tc := range []struct {
		name    string
		noMount bool
	}{{"mount-namespace", false}, {"no-mount-namespace", true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRuntime(t)
			b := secBundle(t, r, "sleep", "30")
			if tc.noMount {
				secDropNamespace(b.Spec, specs.MountNamespace)
				b.save(t)
			}
			id := uniqueID(t)
			secCreate(t, r, b, id)
			if st := r.state(id).Status; st != "created" {
				t.Fatalf("set-up: container is %s, want created", st)
			}
			marker := fmt.Sprintf("berth-init-escape-%d", time.Now().UnixNano())
			out, errOut, code := secRuntime(t, r, 20*time.Second, nil, "exec", id, "/bin/probe", "procpeek", "1", marker)
			t.Logf("exec procpeek: exit %d\n%s%s", code, out, errOut)
			if code != 0 || !strings.Contains(out, "peek-done") {
				t.Fatalf("set-up: the attacker did not run in the created container: exit %d\n%s%s", code, out, errOut)
			}
			if st := r.state(id).Status; st != "created" {
				t.Errorf("set-up: container is %s after the attack, want created (the init must still be waiting)", st)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "readlink /proc/1/fd/") && strings.Contains(line, " -> ") {
					t.Errorf("the container can read the waiting init's fds: %s", line)
				}
				if strings.HasPrefix(line, "OPENED /proc/1/fd/") {
					t.Errorf("the container can open the waiting init's fds: %s", line)
				}
				if strings.HasPrefix(line, "readlink /proc/1/exe -> ") || strings.HasPrefix(line, "OPENED /proc/1/exe") {
					t.Errorf("the container can reach the runtime binary through the waiting init: %s", line)
				}
			}
			cands := append(secMarkerCandidates(r, b), filepath.Join(r.root, id))
			secCheckMarker(t, "procpeek of the waiting init", cands, marker)
			// Through /proc/1/cwd or /proc/1/root a marker may only land
			// in the rootfs (the init's cwd and root are the container's).
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "MARKER created through ") {
					if _, err := os.Stat(b.rootfs(marker)); err != nil {
						t.Errorf("%s, but not in the rootfs: %v", line, err)
					}
				}
			}
			// The container still starts normally afterwards.
			r.run("start", id)
		})
	}
}

// secDropNamespace removes a namespace from linux.namespaces.
func secDropNamespace(s *specs.Spec, typ specs.LinuxNamespaceType) {
	var kept []specs.LinuxNamespace
	for _, ns := range s.Linux.Namespaces {
		if ns.Type != typ {
			kept = append(kept, ns)
		}
	}
	s.Linux.Namespaces = kept
}

// ----------------------------------------------------------------------------
// 9. tmpcopyup must copy the image's symlinks as symlinks.

// TestSecurityTmpcopyupSymlinks mounts a tmpfs with "tmpcopyup" over an
// image directory that holds symlinks pointing out of the rootfs (to a host
// directory and a host file, absolute and relative). The runtime copies the
// directory as root in a mount namespace where those paths are the host's;
// it must copy the links themselves, never what they point to, and write
// nothing outside the tmpfs.
func TestSecurityTmpcopyupSymlinks(t *testing.T) {
	r := newRuntime(t)
	hostDir := t.TempDir()
	hostFile := filepath.Join(hostDir, "host-secret")
	if err := os.WriteFile(hostFile, []byte("HOST-SECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `echo "=== ls"; ls -la /data
echo "=== file"; cat /data/file
echo "=== links"; for l in dirlink filelink rellink; do echo "$l -> $(readlink /data/$l)"; done
echo "=== secret"; cat /data/filelink /data/dirlink/host-secret /data/rellink 2>&1
echo "=== write"; echo container > /data/dirlink/written 2>&1; echo container > /data/new && echo wrote-new
echo "=== end"`
	b := secBundle(t, r, "sh", "-c", script)
	if err := os.MkdirAll(b.rootfs("data/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(b.rootfs("data/file"), []byte("image data\n"), 0o644)
	os.WriteFile(b.rootfs("data/sub/nested"), []byte("nested\n"), 0o644)
	for name, target := range map[string]string{
		"data/dirlink":  hostDir,
		"data/filelink": hostFile,
		"data/rellink":  strings.Repeat("../", 24) + hostFile[1:],
	} {
		if err := os.Symlink(target, b.rootfs(name)); err != nil {
			t.Fatal(err)
		}
	}
	b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup", "mode=755"}})
	b.save(t)
	out, errOut, code := r.runOutput(b, uniqueID(t))
	t.Logf("exit %d\n%s%s", code, out, errOut)

	if data := secReadFile(hostFile); data != "HOST-SECRET\n" {
		t.Errorf("host file %s changed: %q", hostFile, data)
	}
	if got := secListTree(t, hostDir); len(got) != 1 {
		t.Errorf("files appeared in the host directory an image symlink points to: %v", got)
	}
	if code != 0 || !strings.Contains(out, "=== end") {
		t.Fatalf("a tmpfs with tmpcopyup over an image directory with symlinks does not work: exit %d\n%s", code, errOut)
	}
	if got := secSection(out, "file"); got != "image data\n" {
		t.Errorf("tmpcopyup did not copy the image's file: %q", got)
	}
	links := secSection(out, "links")
	for _, want := range []string{"dirlink -> " + hostDir, "filelink -> " + hostFile, "rellink -> " + strings.Repeat("../", 24) + hostFile[1:]} {
		if !strings.Contains(links, want+"\n") {
			t.Errorf("tmpcopyup did not copy the symlink as a symlink (want %q):\n%s", want, links)
		}
	}
	if strings.Contains(secSection(out, "secret"), "HOST-SECRET") {
		t.Errorf("the container reads the host file through the copied-up tmpfs:\n%s", secSection(out, "secret"))
	}
	if !strings.Contains(secSection(out, "write"), "wrote-new") {
		t.Errorf("set-up: /data is not a writable tmpfs in the container:\n%s", secSection(out, "write"))
	}
	if _, err := os.Stat(b.rootfs("data/new")); err == nil {
		t.Errorf("the container's write to /data went to the image, not the tmpfs")
	}
}
