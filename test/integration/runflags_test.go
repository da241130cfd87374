//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// wantLines checks that out holds each of want, in order, as whole lines.
func wantLines(t *testing.T, what, out string, want ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	i := 0
	for _, l := range lines {
		if i < len(want) && strings.TrimSpace(l) == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("%s: output lacks line %q (in order):\n%s", what, want[i], out)
	}
}

// TestRunFlagsResources: --cpu-shares, --cpu-period, --cpu-quota,
// --cpuset-cpus, --cpuset-mems, --memory-swap, --memory-reservation,
// --oom-kill-disable, --blkio-weight, --oom-score-adj and --shm-size land
// in the container's cgroup, its /proc and its /dev/shm, and in inspect's
// HostConfig; docker's refusals and clamps hold.
func TestRunFlagsResources(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err != nil {
		t.Skip("needs cgroup v1 controllers with swap accounting (this host's hybrid layout)")
	}
	e := newEngine(t)
	e.loadDemoImage()
	code, out, errOut := e.exitCode("run", "--rm", "--network", "none",
		"--cpu-shares", "512", "--cpu-period", "50000", "--cpu-quota", "25000", "--cpuset-cpus", "0", "--cpuset-mems", "0",
		"-m", "64m", "--memory-swap", "96m", "--memory-reservation", "32m", "--oom-kill-disable",
		"--blkio-weight", "300", "--oom-score-adj", "300", "--shm-size", "16m",
		demoImage, "sh", "-c", `cd /sys/fs/cgroup; cat cpu/cpu.shares cpu/cpu.cfs_period_us cpu/cpu.cfs_quota_us cpuset/cpuset.cpus cpuset/cpuset.mems;
cat memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes memory/memory.soft_limit_in_bytes; grep oom_kill_disable memory/memory.oom_control;
cat blkio/blkio.weight 2>/dev/null || cat blkio/blkio.bfq.weight 2>/dev/null || echo no-weight; cat /proc/self/oom_score_adj; df -k /dev/shm | tail -1`)
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, errOut)
	}
	// A block I/O weight needs the CFQ or BFQ scheduler (v1's
	// blkio.weight or blkio.bfq.weight): a kernel without either gets
	// docker's warning, and the weight is discarded.
	weight := "300"
	w1, _ := filepath.Glob("/sys/fs/cgroup/blkio/blkio*weight")
	w2, _ := filepath.Glob("/sys/fs/cgroup/blkio/*/blkio*weight")
	if len(w1)+len(w2) == 0 {
		weight = "no-weight"
		if !strings.Contains(errOut, "does not support Block I/O weight") {
			t.Errorf("--blkio-weight on a kernel without a weight: no warning: %s", errOut)
		}
		t.Log("this kernel has no block I/O weight (no CFQ or BFQ): checked the warning instead")
	}
	wantLines(t, "resources", out, "512", "50000", "25000", "0", "0",
		"67108864", "100663296", "33554432", "oom_kill_disable 1", weight, "300")
	if !strings.Contains(out, "shm") || !strings.Contains(out, " 16384 ") {
		t.Errorf("/dev/shm is not 16 MiB:\n%s", out)
	}
	// docker's default swap: as much again as --memory.
	out = e.run("run", "--rm", "--network", "none", "-m", "64m", demoImage, "cat", "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	wantLines(t, "default swap", out, "134217728")

	// inspect shows them in docker's HostConfig fields.
	id := strings.TrimSpace(e.run("create", "--network", "none", "--cpu-shares", "512", "--cpu-period", "50000", "--cpu-quota", "25000",
		"--cpuset-cpus", "0", "--cpuset-mems", "0", "-m", "64m", "--memory-reservation", "32m", "--oom-kill-disable",
		"--blkio-weight", "300", "--oom-score-adj", "300", "--shm-size", "16m", demoImage, "true"))
	got := e.run("inspect", "-f", "{{.HostConfig.CpuShares}} {{.HostConfig.CpuPeriod}} {{.HostConfig.CpuQuota}} {{.HostConfig.CpusetCpus}} {{.HostConfig.CpusetMems}} {{.HostConfig.MemorySwap}} {{.HostConfig.MemoryReservation}} {{.HostConfig.OomKillDisable}} {{.HostConfig.BlkioWeight}} {{.HostConfig.OomScoreAdj}} {{.HostConfig.ShmSize}}", id)
	if want := "512 50000 25000 0 0 134217728 33554432 true 300 300 16777216"; strings.TrimSpace(got) != want {
		t.Errorf("inspect: %q, want %q", got, want)
	}
	// docker's update refuses a memory limit above the memory+swap one.
	if code, _, errOut := e.exitCode("update", "-m", "256m", id); code == 0 || !strings.Contains(errOut, "memoryswap") {
		t.Errorf("update -m above the swap limit: exit %d %s", code, errOut)
	}
	e.run("rm", id)

	// A negative oom_score_adj needs CAP_SYS_RESOURCE: without it, it is
	// clamped with a warning.
	if code, out, errOut := e.exitCode("run", "--rm", "--network", "none", "--oom-score-adj", "-500", demoImage, "cat", "/proc/self/oom_score_adj"); code != 0 {
		t.Errorf("--oom-score-adj -500: exit %d %s", code, errOut)
	} else if strings.Contains(errOut, "clamped") {
		if strings.TrimSpace(out) == "-500" {
			t.Errorf("clamped, yet the process has -500")
		}
	} else if strings.TrimSpace(out) != "-500" {
		t.Errorf("--oom-score-adj -500: %q, no warning: %s", out, errOut)
	}
	for _, bad := range [][]string{
		{"--cpus", "1", "--cpu-quota", "50000"}, {"--cpu-period", "100"}, {"--cpu-quota", "10"},
		{"--cpuset-cpus", "4096"}, {"--memory-swap", "1g"}, {"-m", "64m", "--memory-swap", "32m"},
		{"-m", "32m", "--memory-reservation", "64m"}, {"--blkio-weight", "5"}, {"--oom-score-adj", "1001"}, {"--shm-size", "x"},
	} {
		args := append(append([]string{"run", "--rm", "--network", "none"}, bad...), demoImage, "true")
		if code, _, errOut := e.exitCode(args...); code != 125 {
			t.Errorf("%v: exit %d, want 125: %s", bad, code, errOut)
		}
	}
	e.checkNothingLeft()
}

// TestRunFlagsDevicesKernel: --device (with its cgroup permissions),
// --device-cgroup-rule, --sysctl and --group-add.
func TestRunFlagsDevicesKernel(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	out := e.run("run", "--rm", "--network", "none",
		"--device", "/dev/null:/dev/mynull:rw", "--device", "/dev/fuse:/dev/f:r",
		"--device-cgroup-rule", "c 10:200 rwm", "--cap-add", "MKNOD",
		"--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=123456789", "--sysctl", "fs.mqueue.msg_max=20",
		"--group-add", "1234", "--group-add", "nogroup",
		demoImage, "sh", "-c", `ls -l /dev/mynull /dev/f | awk '{print $1, $5, $6}';
echo x > /dev/mynull && echo mynull-writable; (exec 3</dev/f) && echo f-readable; (exec 3>/dev/f) 2>&1 | grep -q 'not permitted' && echo f-not-writable;
mknod /dev/tun2 c 10 200 && cat /dev/tun2 2>&1 | grep -q 'bad state' && echo tun-allowed;
mknod /dev/lc c 10 237 && cat /dev/lc 2>&1 | grep -q 'not permitted' && echo loop-control-denied;
cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax /proc/sys/fs/mqueue/msg_max; id -G`)
	wantLines(t, "devices and sysctls", out, "crw-rw-rw- 10, 229", "crw-rw-rw- 1, 3", "mynull-writable", "f-readable", "f-not-writable",
		"tun-allowed", "loop-control-denied", "1", "123456789", "20", "0 1234 65534")
	// The host's values are untouched.
	if b, _ := os.ReadFile("/proc/sys/kernel/shmmax"); strings.TrimSpace(string(b)) == "123456789" {
		t.Error("--sysctl kernel.shmmax changed the host's")
	}
	id := strings.TrimSpace(e.run("create", "--device", "/dev/zero:/dev/z:r", "--device-cgroup-rule", "c 10:200 rwm",
		"--sysctl", "net.ipv4.ip_forward=1", "--group-add", "nogroup", demoImage, "true"))
	got := e.run("inspect", "-f", "{{json .HostConfig.Devices}} {{json .HostConfig.DeviceCgroupRules}} {{json .HostConfig.Sysctls}} {{json .HostConfig.GroupAdd}}", id)
	if want := `[{"CgroupPermissions":"r","PathInContainer":"/dev/z","PathOnHost":"/dev/zero"}] ["c 10:200 rwm"] {"net.ipv4.ip_forward":"1"} ["nogroup"]`; strings.TrimSpace(got) != want {
		t.Errorf("inspect: %s\nwant %s", got, want)
	}
	e.run("rm", id)
	for _, bad := range [][]string{
		{"--sysctl", "kernel.panic=1"}, {"--network", "host", "--sysctl", "net.ipv4.ip_forward=1"},
		{"--ipc", "host", "--sysctl", "kernel.shmmax=1"}, {"--sysctl", "novalue"},
		{"--device", "/dev/does-not-exist"}, {"--device", "/dev/null:/dev/n:rwx"}, {"--device", "/etc/passwd"},
		{"--device-cgroup-rule", "c 1:3"}, {"--group-add", "no-such-group"},
	} {
		args := append(append([]string{"run", "--rm", "--network", "none"}, bad...), demoImage, "true")
		if code, _, errOut := e.exitCode(args...); code != 125 {
			t.Errorf("%v: exit %d, want 125: %s", bad, code, errOut)
		}
	}
	e.checkNothingLeft()
}

func hostNS(t *testing.T, kind string) string {
	l, err := os.Readlink("/proc/self/ns/" + kind)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRunFlagsNamespaces: --pid, --ipc, --uts, --cgroupns and --userns
// host share the host's namespaces; --pid/--ipc container:NAME share a
// shareable container's (and its /dev/shm); --ipc none has no /dev/shm;
// --cgroup-parent places the cgroup.
func TestRunFlagsNamespaces(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	show := `for n in pid ipc uts cgroup; do readlink /proc/self/ns/$n; done`
	out := e.run("run", "--rm", "--network", "none", "--pid", "host", "--ipc", "host", "--uts", "host", "--cgroupns", "host", "--userns", "host",
		demoImage, "sh", "-c", show+"; hostname; test -d /proc/1/ && cat /proc/1/comm")
	host, _ := os.Hostname()
	init, _ := os.ReadFile("/proc/1/comm")
	wantLines(t, "host namespaces", out, hostNS(t, "pid"), hostNS(t, "ipc"), hostNS(t, "uts"), hostNS(t, "cgroup"), host, strings.TrimSpace(string(init)))
	out = e.run("run", "--rm", "--network", "none", demoImage, "sh", "-c", show)
	for _, kind := range []string{"pid", "ipc", "uts", "cgroup"} {
		if strings.Contains(out, hostNS(t, kind)+"\n") {
			t.Errorf("a default container shares the host's %s namespace:\n%s", kind, out)
		}
	}

	e.run("run", "-d", "--name", "donor", "--network", "none", "--ipc", "shareable", "--shm-size", "8m", demoImage,
		"sh", "-c", "echo from-donor > /dev/shm/x; exec sleep 100")
	waitFor(t, 10*time.Second, "the donor's /dev/shm file", func() bool {
		o, _, err := e.try("exec", "donor", "cat", "/dev/shm/x")
		return err == nil && strings.TrimSpace(o) == "from-donor"
	})
	donor := e.run("exec", "donor", "sh", "-c", show)
	dl := strings.Split(strings.TrimSpace(donor), "\n")
	out = e.run("run", "--rm", "--network", "none", "--pid", "container:donor", "--ipc", "container:donor", demoImage,
		"sh", "-c", show+"; cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /dev/shm/x; df -k /dev/shm | tail -1")
	wantLines(t, "joined namespaces", out, dl[0], dl[1], "sleep 100", "from-donor")
	if strings.Contains(out, dl[2]+"\n") {
		t.Errorf("the UTS namespace was shared too:\n%s", out)
	}
	if !strings.Contains(out, " 8192 ") {
		t.Errorf("the joiner's /dev/shm is not the donor's 8 MiB one:\n%s", out)
	}
	e.run("run", "-d", "--name", "private", "--network", "none", demoImage, "sleep", "100")
	if code, _, errOut := e.exitCode("run", "--rm", "--ipc", "container:private", demoImage, "true"); code != 125 || !strings.Contains(errOut, "shareable") {
		t.Errorf("joining a private IPC namespace: exit %d %s", code, errOut)
	}
	e.run("stop", "-t", "0", "donor")
	if code, _, errOut := e.exitCode("run", "--rm", "--network", "none", "--pid", "container:donor", demoImage, "true"); code == 0 || !strings.Contains(errOut, "non running") {
		t.Errorf("joining a stopped container's PID namespace: exit %d %s", code, errOut)
	}
	e.run("rm", "-f", "donor", "private")

	// --ipc none: a private namespace without /dev/shm.
	out = e.run("run", "--rm", "--network", "none", "--ipc", "none", demoImage, "sh", "-c", "test -e /dev/shm || echo no-shm")
	wantLines(t, "--ipc none", out, "no-shm")

	// --cgroup-parent: the container's cgroup is made below it.
	parent := "/berth-test-parent-" + filepath.Base(t.TempDir())
	t.Cleanup(func() {
		for _, c := range []string{"memory", "cpu", "pids", "devices", "freezer", "blkio", "cpuset", "cpuacct", "systemd", "unified"} {
			os.Remove("/sys/fs/cgroup/" + c + parent)
		}
		os.Remove("/sys/fs/cgroup" + parent)
	})
	id := strings.TrimSpace(e.run("run", "-d", "--network", "none", "--cgroup-parent", parent, demoImage, "sleep", "100"))
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", e.inspect(id).State.Pid))
	if !strings.Contains(string(cg), ":"+parent+"/"+id+"\n") {
		t.Errorf("--cgroup-parent %s: the process's cgroups:\n%s", parent, cg)
	}
	got := e.run("inspect", "-f", "{{.HostConfig.CgroupParent}} {{.HostConfig.IpcMode}} {{.HostConfig.CgroupnsMode}}", id)
	if strings.TrimSpace(got) != parent+" private private" {
		t.Errorf("inspect: %q", got)
	}
	e.run("rm", "-f", id)
	id = strings.TrimSpace(e.run("create", "--pid", "host", "--ipc", "host", "--uts", "host", "--cgroupns", "host", "--userns", "host", demoImage, "true"))
	if got := e.run("inspect", "-f", "{{.HostConfig.PidMode}} {{.HostConfig.IpcMode}} {{.HostConfig.UTSMode}} {{.HostConfig.CgroupnsMode}} {{.HostConfig.UsernsMode}}", id); strings.TrimSpace(got) != "host host host host host" {
		t.Errorf("inspect: %q", got)
	}
	e.run("rm", id)
	for _, bad := range [][]string{{"--uts", "container:x"}, {"--pid", "private"}, {"--ipc", "container:nosuch"}, {"--cgroupns", "x"},
		{"--userns", "keep-id"}, {"--uts", "host", "--hostname", "h"}} {
		args := append(append([]string{"run", "--rm"}, bad...), demoImage, "true")
		if code, _, errOut := e.exitCode(args...); code != 125 {
			t.Errorf("%v: exit %d, want 125: %s", bad, code, errOut)
		}
	}
	e.checkNothingLeft()
}

// TestRunFlagsMisc: --cidfile, --label-file, --dns-option, --domainname,
// --volumes-from, --annotation, --expose, --runtime and --security-opt
// systempaths=unconfined.
func TestRunFlagsMisc(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	dir := t.TempDir()
	cidfile := filepath.Join(dir, "cid")
	labels := filepath.Join(dir, "labels")
	os.WriteFile(labels, []byte("# labels\nfrom.file=yes\nover=file\n\nbare\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "hostfile"), []byte("host data\n"), 0o644)
	e.run("create", "--name", "vols", "-v", dir+":/hostdir", "-v", "named:/named", demoImage, "true")
	e.run("run", "--rm", "-v", "named:/named", demoImage, "sh", "-c", "echo in-volume > /named/f")

	id := strings.TrimSpace(e.run("run", "-d", "--network", "none", "--cidfile", cidfile, "--label-file", labels, "-l", "over=flag",
		"--dns-option", "ndots:3", "--dns-option", "timeout:2", "--domainname", "example.org",
		"--volumes-from", "vols:ro", "--annotation", "org.example.note=hello", "--expose", "7000", "--expose", "7100-7101/udp",
		"--runtime", "linux", "--security-opt", "systempaths=unconfined", demoImage, "sleep", "100"))
	if b, err := os.ReadFile(cidfile); err != nil || string(b) != id {
		t.Errorf("--cidfile holds %q (%v), want %q", b, err, id)
	}
	out := e.run("exec", id, "sh", "-c", `cat /proc/sys/kernel/domainname; grep options /etc/resolv.conf; cat /hostdir/hostfile /named/f;
touch /hostdir/x 2>/dev/null || echo hostdir-ro; touch /named/x 2>/dev/null || echo named-ro; head -1 /proc/timer_list | grep -q . && echo timer_list-visible`)
	wantLines(t, "misc", out, "example.org", "options ndots:3 timeout:2", "host data", "in-volume", "hostdir-ro", "named-ro", "timer_list-visible")
	got := e.run("inspect", "-f", `{{json .Config.Labels}} {{json .Config.ExposedPorts}} {{.Config.Domainname}} {{json .HostConfig.DnsOptions}} {{json .HostConfig.VolumesFrom}} {{json .HostConfig.Annotations}} {{.HostConfig.Runtime}} {{len .HostConfig.MaskedPaths}} {{len .Mounts}}`, id)
	// The image's label is there too, as docker merges it in.
	if want := `{"bare":"","from.file":"yes","org.opencontainers.image.title":"berth demo busybox","over":"flag"} {"7000/tcp":{},"7100/udp":{},"7101/udp":{}} example.org ["ndots:3","timeout:2"] ["vols:ro"] {"org.example.note":"hello"} linux 0 2`; strings.TrimSpace(got) != want {
		t.Errorf("inspect: %s\nwant %s", got, want)
	}
	// The annotation reaches the OCI runtime's config.
	var cfg struct{ Annotations map[string]string }
	b, _ := os.ReadFile(filepath.Join(e.root, "containers", id, "config.json"))
	if json.Unmarshal(b, &cfg); cfg.Annotations["org.example.note"] != "hello" {
		t.Errorf("config.json annotations: %v", cfg.Annotations)
	}
	// An existing cidfile is refused, before anything is made.
	if code, _, errOut := e.exitCode("run", "--rm", "--cidfile", cidfile, demoImage, "true"); code != 125 || !strings.Contains(errOut, "container ID file found") {
		t.Errorf("existing --cidfile: exit %d %s", code, errOut)
	}
	// Without systempaths=unconfined /proc/timer_list is masked.
	out = e.run("run", "--rm", "--network", "none", demoImage, "sh", "-c", "head -1 /proc/timer_list | grep -q . || echo masked")
	wantLines(t, "masked", out, "masked")
	// --expose with -P publishes the port.
	pid := strings.TrimSpace(e.run("run", "-d", "--expose", "7000", "-P", demoImage, "sleep", "100"))
	if got := e.run("inspect", "-f", "{{json .NetworkSettings.Ports}}", pid); !strings.Contains(got, `"7000/tcp":[{`) {
		t.Errorf("--expose 7000 -P: ports %s", got)
	}
	e.run("rm", "-f", id, pid, "vols")
	for _, bad := range [][]string{{"--runtime", "runc"}, {"--expose", "0"}, {"--expose", "80/xtp"}, {"--volumes-from", "nosuch"},
		{"--volumes-from", "vols:rx"}, {"--security-opt", "systempaths=confined"}, {"--annotation", "novalue"}} {
		args := append(append([]string{"run", "--rm"}, bad...), demoImage, "true")
		if code, _, errOut := e.exitCode(args...); code != 125 {
			t.Errorf("%v: exit %d, want 125: %s", bad, code, errOut)
		}
	}
	e.run("volume", "rm", "named")
}

// TestStopRestartSignal: stop and restart -s send that signal instead of
// the container's stop signal.
func TestStopRestartSignal(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("run", "-d", "--name", "sig", "--network", "none", demoImage, "sh", "-c",
		`trap 'echo got-usr1; exit 3' USR1; echo ready; while :; do sleep 0.1; done`)
	logs := func() string { o, _, _ := e.try("logs", "sig"); return o }
	waitFor(t, 10*time.Second, "the trap", func() bool { return strings.Contains(logs(), "ready") })
	start := time.Now()
	e.run("stop", "-s", "USR1", "-t", "30", "sig")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stop -s USR1 took %s: the signal did not stop it", d)
	}
	if got := e.inspect("sig").State.ExitCode; got != 3 {
		t.Errorf("stop -s USR1: exit code %d, want the trap's 3", got)
	}
	e.run("start", "sig")
	waitFor(t, 10*time.Second, "the restart's trap", func() bool { return strings.Count(logs(), "ready") == 2 })
	e.run("restart", "--signal", "SIGUSR1", "-t", "30", "sig")
	waitFor(t, 10*time.Second, "the trap after restart", func() bool { return strings.Count(logs(), "ready") == 3 })
	if n := strings.Count(logs(), "got-usr1"); n != 2 {
		t.Errorf("got-usr1 %d times, want 2:\n%s", n, logs())
	}
	if !e.inspect("sig").State.Running {
		t.Error("not running after restart")
	}
	if code, _, _ := e.exitCode("stop", "-s", "NOPE", "sig"); code == 0 {
		t.Error("stop -s NOPE succeeded")
	}
	if !e.inspect("sig").State.Running {
		t.Error("stop -s NOPE stopped it")
	}
	e.run("rm", "-f", "sig")
	e.checkNothingLeft()
}

// TestNetworkCreateIPRange: --ip-range limits the addresses containers
// get to a sub-range of the subnet; --ip may still name any address of
// the subnet, as docker's.
func TestNetworkCreateIPRange(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	e.run("network", "create", "--subnet", "10.231.77.0/24", "--ip-range", "10.231.77.128/30", "ranged")
	addr := func(args ...string) string {
		out := e.run(append(append([]string{"run", "--rm", "--network", "ranged"}, args...), demoImage, "sh", "-c", "ip -4 -o addr show eth0")...)
		f := strings.Fields(out)
		if len(f) < 4 {
			t.Fatalf("ip addr: %q", out)
		}
		return strings.Split(f[3], "/")[0]
	}
	for i := 0; i < 3; i++ {
		if a := addr(); !strings.HasPrefix(a, "10.231.77.") || a < "10.231.77.128" || a > "10.231.77.131" {
			t.Errorf("address %s is outside the range 10.231.77.128/30", a)
		}
	}
	if a := addr("--ip", "10.231.77.9"); a != "10.231.77.9" {
		t.Errorf("--ip 10.231.77.9 outside the range: got %s", a)
	}
	if got := e.run("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{.IPRange}}{{end}}", "ranged"); strings.TrimSpace(got) != "10.231.77.0/24 10.231.77.128/30" {
		t.Errorf("inspect: %q", got)
	}
	for _, bad := range [][]string{{"--ip-range", "10.231.78.0/25"}, {"--subnet", "10.231.79.0/24", "--ip-range", "10.231.80.0/25"},
		{"--subnet", "10.231.79.0/24", "--ip-range", "nope"}} {
		if code, _, errOut := e.exitCode(append(append([]string{"network", "create"}, bad...), "bad")...); code == 0 {
			t.Errorf("%v accepted: %s", bad, errOut)
		}
	}
	e.run("network", "rm", "ranged")
	e.checkNetworkClean()
}

// TestVolumeCreateLocalOptions: volume create -o type=,device=,o= makes a
// volume that is that mount while a container using it runs (docker's
// local driver): a tmpfs with its size and owner, shared by the
// containers that run at once and gone with the last; a bind of a host
// directory, whose files a volume rm leaves alone.
func TestVolumeCreateLocalOptions(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	e.run("volume", "create", "-d", "local", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=4m,uid=1000", "tv")
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "f"), []byte("host side\n"), 0o644)
	e.run("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", "device="+host, "bv")
	out := e.run("run", "--rm", "--network", "none", "-v", "tv:/t", "-v", "bv:/b", demoImage, "sh", "-c",
		`df -k /t | tail -1 | awk '{print $1, $2}'; stat -c %u /t; cat /b/f; echo from-container > /b/g; echo gone > /t/x`)
	wantLines(t, "local volumes", out, "tmpfs 4096", "1000", "host side")
	if b, _ := os.ReadFile(filepath.Join(host, "g")); string(b) != "from-container\n" {
		t.Errorf("the bind volume's write did not reach the host: %q", b)
	}
	// Two containers at once share the tmpfs; after the last, it is gone.
	e.run("run", "-d", "--name", "keep", "--network", "none", "-v", "tv:/t", demoImage, "sleep", "100")
	e.run("run", "--rm", "--network", "none", "-v", "tv:/t", demoImage, "sh", "-c", "echo shared > /t/s")
	if got := e.run("exec", "keep", "cat", "/t/s"); got != "shared\n" {
		t.Errorf("the tmpfs volume is not shared by running containers: %q", got)
	}
	if code, _, errOut := e.exitCode("volume", "rm", "tv"); code == 0 || !strings.Contains(errOut, "in use") {
		t.Errorf("volume rm of a volume in use: exit %d %s", code, errOut)
	}
	e.run("rm", "-f", "keep")
	if got := e.run("run", "--rm", "--network", "none", "-v", "tv:/t", demoImage, "ls", "/t"); strings.TrimSpace(got) != "" {
		t.Errorf("the tmpfs volume kept %q after its last container", got)
	}
	if got := e.run("volume", "inspect", "-f", "{{json .Options}}", "tv"); strings.TrimSpace(got) != `{"device":"tmpfs","o":"size=4m,uid=1000","type":"tmpfs"}` {
		t.Errorf("inspect: %s", got)
	}
	e.run("volume", "rm", "tv", "bv")
	if b, err := os.ReadFile(filepath.Join(host, "f")); err != nil || string(b) != "host side\n" {
		t.Errorf("volume rm of a bind volume touched the host's files: %q %v", b, err)
	}
	for _, bad := range [][]string{{"-o", "type=tmpfs"}, {"-o", "device=tmpfs"}, {"-o", "foo=bar"}, {"-o", "size=1g"}, {"-d", "nfs"}, {"-o", "novalue"}} {
		if code, _, errOut := e.exitCode(append(append([]string{"volume", "create"}, bad...), "bad")...); code == 0 {
			t.Errorf("%v accepted: %s", bad, errOut)
		}
	}
	e.checkNothingLeft()
}

// TestRunLogTag: --log-opt tag=TEMPLATE puts docker's "attrs":{"tag":...}
// in every json-file line, the template filled from the container.
func TestRunLogTag(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	id := strings.TrimSpace(e.run("create", "--name", "tagged", "--network", "none", "--log-opt", `tag={{.Name}}|{{.ID}}|{{.ImageName}}|{{upper "x"}}`,
		demoImage, "sh", "-c", `echo 'out "quoted"'; echo err >&2`))
	e.run("start", "-a", "tagged")
	data, err := os.ReadFile(e.inspect(id).LogPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 {
		t.Fatalf("log lines:\n%s", data)
	}
	want := "tagged|" + id[:12] + "|" + demoImage + "|X"
	for _, l := range lines {
		var ent struct {
			Log, Stream string
			Attrs       map[string]string
			Time        time.Time
		}
		if err := json.Unmarshal([]byte(l), &ent); err != nil || ent.Attrs["tag"] != want || ent.Time.IsZero() {
			t.Errorf("log line %s: %+v %v, want tag %q", l, ent, err, want)
		}
	}
	if out := e.run("logs", "tagged"); !strings.Contains(out, `out "quoted"`) {
		t.Errorf("logs: %q", out)
	}
	if got := e.run("inspect", "-f", "{{index .HostConfig.LogConfig.Config \"tag\"}}", id); !strings.Contains(got, "{{.Name}}") {
		t.Errorf("inspect LogConfig tag: %q", got)
	}
	e.run("rm", id)
	for _, bad := range []string{"tag={{.Nope}}", "tag={{", "labels=a"} {
		if code, _, errOut := e.exitCode("run", "--rm", "--log-opt", bad, demoImage, "true"); code != 125 {
			t.Errorf("--log-opt %s: exit %d %s", bad, code, errOut)
		}
	}
}
