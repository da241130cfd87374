package integration

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tarOwners lists a tar stream's entries as "name uid:gid" lines.
func tarOwners(t *testing.T, data []byte) string {
	t.Helper()
	var b strings.Builder
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return b.String()
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		fmt.Fprintf(&b, "%s %d:%d\n", strings.TrimSuffix(h.Name, "/"), h.Uid, h.Gid)
	}
}

// keepSubIDFiles saves /etc/subuid and /etc/subgid (or their absence) and
// puts them back exactly at the end of the test, then removes the berth
// user's entries, so that the test sees berth add them. No other test
// uses them (the package's tests run one at a time).
func keepSubIDFiles(t *testing.T) {
	t.Helper()
	for _, path := range []string{"/etc/subuid", "/etc/subgid"} {
		data, err := os.ReadFile(path)
		existed := err == nil
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		var mode os.FileMode = 0o644
		if st, err := os.Stat(path); err == nil {
			mode = st.Mode().Perm()
		}
		t.Cleanup(func() {
			if !existed {
				if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
					t.Errorf("restore %s: %v", path, err)
				}
				return
			}
			if err := os.WriteFile(path+".test-restore", data, mode); err != nil {
				t.Errorf("restore %s: %v", path, err)
				return
			}
			if err := os.Rename(path+".test-restore", path); err != nil {
				t.Errorf("restore %s: %v", path, err)
			}
		})
	}
	dropBerthEntries(t)
}

// dropBerthEntries removes the berth user's lines from /etc/subuid and
// /etc/subgid.
func dropBerthEntries(t *testing.T) {
	t.Helper()
	for _, path := range []string{"/etc/subuid", "/etc/subgid"} {
		data, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			continue
		}
		st, err2 := os.Stat(path)
		if err != nil || err2 != nil {
			t.Fatal(err, err2)
		}
		var kept []string
		for _, l := range strings.SplitAfter(string(data), "\n") {
			if !strings.HasPrefix(l, "berth:") && l != "" {
				kept = append(kept, l)
			}
		}
		if err := os.WriteFile(path, []byte(strings.Join(kept, "")), st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// berthRanges are the berth user's ranges in a subordinate ID file.
func berthRanges(t *testing.T, path string) [][2]uint64 {
	t.Helper()
	data, _ := os.ReadFile(path)
	var out [][2]uint64
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Split(l, ":")
		if len(f) == 3 && f[0] == "berth" {
			a, _ := strconv.ParseUint(f[1], 10, 32)
			b, _ := strconv.ParseUint(f[2], 10, 32)
			out = append(out, [2]uint64{a, a + b})
		}
	}
	return out
}

// idMap parses a uid_map or gid_map of one line: container, host, size.
func idMap(t *testing.T, s string) (uint64, uint64, uint64) {
	t.Helper()
	f := strings.Fields(s)
	if len(f) != 3 {
		t.Fatalf("not a one-line id map: %q", s)
	}
	var n [3]uint64
	for i := range f {
		n[i], _ = strconv.ParseUint(f[i], 10, 64)
	}
	return n[0], n[1], n[2]
}

// hostUIDs are the real, effective, saved and fs uids of a host process.
func hostUIDs(t *testing.T, pid int) []string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("no Uid line in /proc/%d/status", pid)
	return nil
}

// TestUserns: --userns=auto gives each container a user namespace of its
// own, root mapped onto a block of host IDs of the berth user's
// subordinate ranges (which berth adds to /etc/subuid and /etc/subgid,
// saying so, when they are missing); blocks are disjoint and freed by rm;
// the image's root files are root's inside, a named volume is writable
// by the container's root, a root-only host file bound in is not
// readable; networking, exec, cp, export and healthchecks work; the
// conflicting modes are refused; --uidmap/--gidmap give an explicit
// mapping, reserved like a block.
func TestUserns(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	keepSubIDFiles(t)

	// The first container adds berth's ranges, and says so once.
	out, errOut, err := e.try("run", "--rm", "--network", "none", "--userns=auto", demoImage, "sh", "-c", "id -u; cat /proc/self/uid_map; cat /proc/self/gid_map")
	if err != nil && strings.Contains(errOut, "cannot make idmapped mounts") {
		t.Skipf("this kernel or file system cannot idmap the layers under %s: %s", e.root, errOut)
	}
	if err != nil {
		t.Fatalf("run --userns=auto: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(errOut, `added "berth:`) || !strings.Contains(errOut, "/etc/subuid") {
		t.Errorf("the first --userns=auto run did not say it added berth's ranges: %q", errOut)
	}
	uidPool, gidPool := berthRanges(t, "/etc/subuid"), berthRanges(t, "/etc/subgid")
	if len(uidPool) != 1 || len(gidPool) != 1 {
		t.Fatalf("berth's entries after the first run: subuid %v, subgid %v", uidPool, gidPool)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != "0" {
		t.Fatalf("inside: %q", out)
	}
	inPool := func(pool [][2]uint64, start, size uint64) bool {
		return start >= pool[0][0] && start+size <= pool[0][1]
	}
	if c, h, n := idMap(t, lines[1]); c != 0 || n != 65536 || !inPool(uidPool, h, n) {
		t.Errorf("uid_map %q is not 65536 IDs of berth's subuid range %v", lines[1], uidPool)
	}
	if c, h, n := idMap(t, lines[2]); c != 0 || n != 65536 || !inPool(gidPool, h, n) {
		t.Errorf("gid_map %q is not 65536 IDs of berth's subgid range %v", lines[2], gidPool)
	}
	if _, errOut, _ := e.try("run", "--rm", "--network", "none", "--userns=auto", demoImage, "true"); strings.Contains(errOut, "added") {
		t.Errorf("the second run said it added ranges again: %q", errOut)
	}

	// Two containers at once: disjoint blocks, non-root on the host.
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.run("network", "create", "usernet")
	e.run("run", "-d", "--name", "a", "--userns=auto", "--network", "usernet", "-v", "uvol:/data", "-v", secret+":/secret",
		"--health-cmd", "test -d /proc/1", "--health-interval", "1s",
		demoImage, "sh", "-c", "while :; do echo hello from a | nc -l -p 80; done")
	e.run("run", "-d", "--name", "b", "--userns=auto:size=4096", "--network", "usernet", demoImage, "sleep", "1000")
	start := map[string]uint64{}
	for name, size := range map[string]uint64{"a": 65536, "b": 4096} {
		pid := e.inspect(name).State.Pid
		_, h, n := idMap(t, e.run("exec", name, "cat", "/proc/self/uid_map"))
		if n != size || !inPool(uidPool, h, n) {
			t.Errorf("%s: uid map of %d IDs at %d, want %d IDs in %v", name, n, h, size, uidPool)
		}
		start[name] = h
		for _, u := range hostUIDs(t, pid) {
			if u != strconv.FormatUint(h, 10) {
				t.Errorf("%s's process %d on the host has uids %v, want all %d", name, pid, hostUIDs(t, pid), h)
				break
			}
		}
	}
	if a, b := start["a"], start["b"]; a < b+4096 && b < a+65536 {
		t.Errorf("the blocks of a (%d, 65536) and b (%d, 4096) overlap", a, b)
	}
	if got := strings.TrimSpace(e.run("inspect", "-f", "{{.HostConfig.UsernsMode}}", "a")); got != "auto" {
		t.Errorf("inspect HostConfig.UsernsMode: %q", got)
	}

	// Inside: the image's root files are root's, the volume is
	// writable, the host's root-only file is no one's and unreadable.
	out = e.run("exec", "a", "sh", "-c", "id -u; stat -c %u:%g / /etc/passwd /bin/sh; echo v > /data/f && stat -c %u:%g /data/f; "+
		"stat -c %u:%g:%a /secret; cat /secret 2>/dev/null || echo read-refused; (echo x > /secret) 2>/dev/null || echo write-refused")
	want := []string{"0", "0:0", "0:0", "0:0", "0:0", "65534:65534:600", "read-refused", "write-refused"}
	got := strings.Split(strings.TrimSpace(out), "\n")
	for i, w := range want {
		if i >= len(got) || got[i] != w && !strings.Contains(got[i], w) {
			t.Errorf("inside a, line %d: want %q\n%s", i, w, out)
			break
		}
	}
	if strings.Contains(out, "host secret") {
		t.Errorf("the container's root read the host's root-only file:\n%s", out)
	}
	// The volume holds container IDs on disk: any container can use it.
	if fi, err := os.Stat(filepath.Join(e.root, "volumes", "uvol", "_data", "f")); err != nil {
		t.Errorf("the volume's file on the host: %v", err)
	} else if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
		t.Errorf("the volume's file is %d:%d on disk, want the container's 0:0", st.Uid, st.Gid)
	}
	if got := strings.TrimSpace(e.run("run", "--rm", "--network", "none", "-v", "uvol:/data", demoImage, "cat", "/data/f")); got != "v" {
		t.Errorf("the volume from a container without a user namespace: %q", got)
	}

	// Networking: b reaches a's port 80 (bound by a's root, which has
	// no privilege over its network namespace) by name.
	waitFor(t, 20*time.Second, "a's listener", func() bool {
		o, _, err := e.try("exec", "b", "sh", "-c", "nc a 80 </dev/null")
		return err == nil && strings.Contains(o, "hello from a")
	})
	waitFor(t, 30*time.Second, "a's healthcheck", func() bool {
		return strings.TrimSpace(e.run("inspect", "-f", "{{.State.Health.Status}}", "a")) == "healthy"
	})

	// cp both ways and export see container IDs.
	in := filepath.Join(dir, "in.txt")
	os.WriteFile(in, []byte("in\n"), 0o644)
	os.Chown(in, 7, 8)
	e.run("cp", in, "a:/tmp/plain.txt")
	e.run("cp", "-a", in, "a:/tmp/kept.txt")
	if got := strings.TrimSpace(e.run("exec", "a", "stat", "-c", "%u:%g", "/tmp/plain.txt", "/tmp/kept.txt")); got != "0:0\n7:8" {
		t.Errorf("cp into the container: owners %q, want 0:0 and 7:8", got)
	}
	var tarOut bytes.Buffer
	cmd := e.command("cp", "-a", "a:/tmp/kept.txt", "-")
	cmd.Stdout = &tarOut
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tarOwners(t, tarOut.Bytes()), "kept.txt 7:8") {
		t.Errorf("cp out of the container as a tar: %s", tarOwners(t, tarOut.Bytes()))
	}
	tarOut.Reset()
	cmd = e.command("export", "a")
	cmd.Stdout = &tarOut
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if owners := tarOwners(t, tarOut.Bytes()); !strings.Contains(owners, "etc/passwd 0:0") || !strings.Contains(owners, "tmp/kept.txt 7:8") {
		t.Errorf("export's owners are not the container's:\n%s", owners)
	}
	if d := e.run("diff", "a"); !strings.Contains(d, "A /tmp/kept.txt") {
		t.Errorf("diff: %s", d)
	}

	// Binds keep their propagation and submounts in a user namespace.
	shared := filepath.Join(dir, "shared")
	if err := os.MkdirAll(filepath.Join(shared, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(shared, shared, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(shared, syscall.MNT_DETACH) })
	if err := syscall.Mount("", shared, "", syscall.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", filepath.Join(shared, "sub"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(shared, "sub", "f"), []byte("below\n"), 0o644)
	for opts, tag := range map[string]string{":rshared": "shared:", ":rslave": "master:"} {
		out := e.run("run", "--rm", "--userns=auto", "--network", "none", "-v", shared+":/p"+opts, demoImage,
			"sh", "-c", `grep " /p " /proc/self/mountinfo; cat /p/sub/f`)
		if !strings.Contains(out, tag) || !strings.HasSuffix(out, "below\n") {
			t.Errorf("-v %s%s in a user namespace: want %s and the submount's file:\n%s", shared, opts, tag, out)
		}
	}

	// rm frees a's block: the next container gets it.
	e.run("rm", "-f", "a")
	e.run("run", "-d", "--name", "c", "--userns=auto", "--network", "none", demoImage, "sleep", "1000")
	if _, h, _ := idMap(t, e.run("exec", "c", "cat", "/proc/self/uid_map")); h != start["a"] {
		t.Errorf("after rm of a (block at %d), c got the block at %d", start["a"], h)
	}

	// Concurrent runs (separate processes) get disjoint blocks.
	const concurrent = 4
	errc := make(chan error, concurrent)
	for i := 0; i < concurrent; i++ {
		go func(i int) {
			_, errOut, err := e.try("run", "-d", "--name", fmt.Sprintf("par%d", i), "--userns=auto:size=1000", "--network", "none", demoImage, "sleep", "1000")
			if err != nil {
				err = fmt.Errorf("%v: %s", err, errOut)
			}
			errc <- err
		}(i)
	}
	for i := 0; i < concurrent; i++ {
		if err := <-errc; err != nil {
			t.Fatalf("concurrent run: %v", err)
		}
	}
	blocks := map[uint64]string{start["b"]: "b", start["a"]: "c"}
	for i := 0; i < concurrent; i++ {
		name := fmt.Sprintf("par%d", i)
		_, h, n := idMap(t, e.run("exec", name, "cat", "/proc/self/uid_map"))
		for s, other := range blocks {
			size := uint64(65536)
			if other == "b" {
				size = 4096
			} else if strings.HasPrefix(other, "par") {
				size = 1000
			}
			if h < s+size && s < h+n {
				t.Errorf("%s's block at %d overlaps %s's at %d", name, h, other, s)
			}
		}
		blocks[h] = name
		e.run("rm", "-f", name)
	}

	// Explicit maps: exactly that mapping, reserved like a block; a map
	// onto another container's host IDs is refused.
	e.run("run", "-d", "--name", "explicit", "--uidmap", "0:3000000000:1000", "--uidmap", "1000:3000100000:1",
		"--gidmap", "0:3000200000:2000", "--network", "none", demoImage, "sleep", "1000")
	out = e.run("exec", "-u", "1000:1000", "explicit", "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u:%g /")
	if fs := strings.Fields(out); strings.Join(fs, " ") != "0 3000000000 1000 1000 3000100000 1 0 3000200000 2000 1000 0:0" {
		t.Errorf("--uidmap/--gidmap inside: %q", out)
	}
	if got := hostUIDs(t, e.inspect("explicit").State.Pid)[0]; got != "3000000000" {
		t.Errorf("--uidmap's root is host uid %s", got)
	}
	bUID := strconv.FormatUint(start["b"], 10)
	if code, _, errOut := e.exitCode("run", "--rm", "--uidmap", "0:"+bUID+":10", demoImage, "true"); code != 125 || !strings.Contains(errOut, "are container") {
		t.Errorf("--uidmap onto b's host IDs: exit %d: %s", code, errOut)
	}
	e.run("rm", "-f", "explicit")

	// Refused: privileged, the host's network or PID namespace, an
	// unknown mode, a user outside the block.
	for _, bad := range [][]string{{"--userns=auto", "--privileged"}, {"--userns=auto", "--network", "host"}, {"--userns=auto", "--pid", "host"},
		{"--userns=auto", "--ipc", "host"}, {"--userns=auto", "--pid", "container:b"},
		{"--userns=keep-id"}, {"--userns=auto:size=100", "--user", "1000"}, {"--userns=auto", "--uidmap", "0:5000000:10"},
		{"--uidmap", "1:5000000:10"}, {"--uidmap", "0:5000000:10", "--privileged"}} {
		args := append(append([]string{"run", "--rm"}, bad...), demoImage, "true")
		if code, _, errOut := e.exitCode(args...); code != 125 || !strings.Contains(errOut, "--userns") && !strings.Contains(errOut, "user namespace") && !strings.Contains(errOut, "--uidmap") {
			t.Errorf("%v: exit %d, want 125 naming the user namespace: %s", bad, code, errOut)
		}
	}

	// The Docker API's create takes HostConfig.UsernsMode the same way.
	sock := e.serveDocker()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	post := func(path, body string) (int, string) {
		t.Helper()
		resp, err := client.Post("http://docker"+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Without berth's entries (the containers keep their blocks), the
	// create adds them again and says so in its warnings.
	dropBerthEntries(t)
	if code, body := post("/v1.43/containers/create?name=api", `{"Image":"`+demoImage+`","Cmd":["sleep","1000"],"HostConfig":{"UsernsMode":"auto","NetworkMode":"none"}}`); code != 201 {
		t.Fatalf("API create with UsernsMode auto: %d %s", code, body)
	} else if !strings.Contains(body, `added \"berth:`) {
		t.Errorf("the API's create did not warn that it added berth's ranges: %s", body)
	}
	if code, body := post("/v1.43/containers/api/start", ""); code != 204 {
		t.Fatalf("API start: %d %s", code, body)
	}
	if _, h, _ := idMap(t, e.run("exec", "api", "cat", "/proc/self/uid_map")); h == 0 || !inPool(uidPool, h, 65536) {
		t.Errorf("the API's container has uid map at %d", h)
	}
	if code, body := post("/v1.43/containers/create", `{"Image":"`+demoImage+`","HostConfig":{"UsernsMode":"auto","Privileged":true}}`); code != 400 || !strings.Contains(body, "privileged") {
		t.Errorf("API create, privileged with UsernsMode auto: %d %s", code, body)
	}

	e.run("rm", "-f", "b", "c", "api")
	e.run("network", "rm", "usernet")
	e.run("volume", "rm", "uvol")
	e.checkNothingLeft()
}
