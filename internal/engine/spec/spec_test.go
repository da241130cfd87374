package spec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime/oci"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
broken line
nohome:x:1001:1001::
`

const testGroup = `root:x:0:
daemon:x:1:
wheel:x:10:app,root
audio:x:29:app
app:x:1000:app
staff:x:50:
`

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/passwd"), testPasswd)
	writeFile(t, filepath.Join(root, "etc/group"), testGroup)
	return root
}

// bigHost is a HostRlimit that grants anything.
func bigHost(int) (uint64, uint64, error) { return rlimInfinity, rlimInfinity, nil }

func lastCap40() (int, error) { return 40, nil }

func baseOpts() Options {
	return Options{HostRlimit: bigHost, HostLastCap: lastCap40, LookupEnv: func(string) (string, bool) { return "", false }}
}

func image(entry, cmd []string) ocispec.Image {
	var img ocispec.Image
	img.Config.Entrypoint, img.Config.Cmd = entry, cmd
	return img
}

func gen(t *testing.T, img ocispec.Image, root string, o Options) (*specs.Spec, []Warning) {
	t.Helper()
	s, w, err := Generate(img, root, o)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return s, w
}

func ptr[T any](v T) *T { return &v }

func TestCommand(t *testing.T) {
	root := testRootfs(t)
	ep, cmd := []string{"/entry", "-x"}, []string{"serve", "--port=80"}
	tests := []struct {
		name       string
		entry, cmd []string
		args       []string
		override   *[]string
		want       []string
		wantErr    string
	}{
		{"cmd only", nil, cmd, nil, nil, cmd, ""},
		{"entrypoint only", ep, nil, nil, nil, ep, ""},
		{"entrypoint and cmd", ep, cmd, nil, nil, []string{"/entry", "-x", "serve", "--port=80"}, ""},
		{"args replace cmd", ep, cmd, []string{"sh"}, nil, []string{"/entry", "-x", "sh"}, ""},
		{"args without entrypoint", nil, cmd, []string{"ls", "-l"}, nil, []string{"ls", "-l"}, ""},
		{"--entrypoint drops cmd", ep, cmd, nil, &[]string{"/bin/true"}, []string{"/bin/true"}, ""},
		{"--entrypoint with args", ep, cmd, []string{"a"}, &[]string{"/bin/echo"}, []string{"/bin/echo", "a"}, ""},
		{"--entrypoint empty with args", ep, cmd, []string{"ls"}, &[]string{}, []string{"ls"}, ""},
		{"--entrypoint empty no args", ep, cmd, nil, &[]string{}, nil, "--entrypoint was given empty"},
		{"nothing", nil, nil, nil, nil, nil, "the image has no CMD or ENTRYPOINT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOpts()
			o.Args, o.Entrypoint = tc.args, tc.override
			s, _, err := Generate(image(tc.entry, tc.cmd), root, o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "no command specified") {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Args, tc.want) {
				t.Fatalf("args = %q, want %q", s.Process.Args, tc.want)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	root := testRootfs(t)
	host := map[string]string{"FROMHOST": "h"}
	tests := []struct {
		name     string
		image    []string
		env      []string
		hostname string
		tty      bool
		want     []string
	}{
		{"defaults", nil, nil, "", false, []string{"PATH=" + DefaultPath, "HOME=/root"}},
		{"hostname and tty", nil, nil, "c1", true, []string{"PATH=" + DefaultPath, "HOSTNAME=c1", "TERM=xterm", "HOME=/root"}},
		{"image path wins", []string{"PATH=/bin", "A=1"}, nil, "", false, []string{"PATH=/bin", "A=1", "HOME=/root"}},
		{"override by key", []string{"A=1", "B=2"}, []string{"B=3", "C=4", "A="}, "", false, []string{"PATH=" + DefaultPath, "A=", "B=3", "C=4", "HOME=/root"}},
		{"from host", nil, []string{"FROMHOST"}, "", false, []string{"PATH=" + DefaultPath, "FROMHOST=h", "HOME=/root"}},
		{"unset on host removes", []string{"A=1", "B=2"}, []string{"A"}, "", false, []string{"PATH=" + DefaultPath, "B=2", "HOME=/root"}},
		{"removed path comes back", nil, []string{"PATH"}, "", false, []string{"PATH=" + DefaultPath, "HOME=/root"}},
		{"home kept", []string{"HOME=/data"}, nil, "", false, []string{"PATH=" + DefaultPath, "HOME=/data"}},
		{"hostname overridable", nil, []string{"HOSTNAME=x"}, "c1", false, []string{"PATH=" + DefaultPath, "HOSTNAME=x", "HOME=/root"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := image(nil, []string{"sh"})
			img.Config.Env = tc.image
			o := baseOpts()
			o.Env, o.Hostname, o.Tty = tc.env, tc.hostname, tc.tty
			o.LookupEnv = func(k string) (string, bool) { v, ok := host[k]; return v, ok }
			s, _ := gen(t, img, root, o)
			if !slices.Equal(s.Process.Env, tc.want) {
				t.Fatalf("env = %q, want %q", s.Process.Env, tc.want)
			}
			if s.Hostname != tc.hostname || s.Process.Terminal != tc.tty {
				t.Fatalf("hostname %q terminal %v", s.Hostname, s.Process.Terminal)
			}
		})
	}
	o := baseOpts()
	o.Env = []string{"=x"}
	if _, _, err := Generate(image(nil, []string{"sh"}), root, o); err == nil {
		t.Fatal("an env entry without a name was accepted")
	}
}

func TestUser(t *testing.T) {
	root := testRootfs(t)
	tests := []struct {
		name, opt, image string
		uid, gid         uint32
		sgids            []uint32
		home             string
		wantErr          []string
	}{
		{name: "default root", uid: 0, gid: 0, sgids: []uint32{10}, home: "/root"},
		{name: "image user", image: "app", uid: 1000, gid: 1000, sgids: []uint32{10, 29}, home: "/home/app"},
		{name: "option beats image", opt: "daemon", image: "app", uid: 1, gid: 1, home: "/usr/sbin"},
		{name: "name", opt: "app", uid: 1000, gid: 1000, sgids: []uint32{10, 29}, home: "/home/app"},
		{name: "uid in passwd", opt: "1000", uid: 1000, gid: 1000, sgids: []uint32{10, 29}, home: "/home/app"},
		{name: "uid not in passwd", opt: "4242", uid: 4242, gid: 0, home: "/"},
		{name: "name:group", opt: "app:staff", uid: 1000, gid: 50, home: "/home/app"},
		{name: "name:gid", opt: "app:77", uid: 1000, gid: 77, home: "/home/app"},
		{name: "uid:gid", opt: "4242:4343", uid: 4242, gid: 4343, home: "/"},
		{name: "empty home", opt: "nohome", uid: 1001, gid: 1001, home: "/"},
		{name: "unknown name", opt: "bob", wantErr: []string{`"bob"`, "/etc/passwd"}},
		{name: "unknown group", opt: "app:nogroup", wantErr: []string{`"nogroup"`, "/etc/group"}},
		{name: "bad form", opt: ":5", wantErr: []string{`":5"`}},
		{name: "uid too big", opt: "99999999999", wantErr: []string{"99999999999"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := image(nil, []string{"sh"})
			img.Config.User = tc.image
			o := baseOpts()
			o.User = tc.opt
			s, _, err := Generate(img, root, o)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u := s.Process.User
			// The primary group leads the supplementary ones (docker's).
			want := append([]uint32{tc.gid}, tc.sgids...)
			if u.UID != tc.uid || u.GID != tc.gid || !slices.Equal(u.AdditionalGids, want) {
				t.Fatalf("user = %+v, want %d:%d %v", u, tc.uid, tc.gid, want)
			}
			if !slices.Contains(s.Process.Env, "HOME="+tc.home) {
				t.Fatalf("env %q lacks HOME=%s", s.Process.Env, tc.home)
			}
		})
	}
}

func TestUserWithoutFiles(t *testing.T) {
	root := t.TempDir()
	o := baseOpts()
	for _, u := range []string{"", "123", "123:456"} {
		o.User = u
		if _, _, err := Generate(image(nil, []string{"sh"}), root, o); err != nil {
			t.Errorf("user %q: %v", u, err)
		}
	}
	o.User = "app"
	_, _, err := Generate(image(nil, []string{"sh"}), root, o)
	if err == nil || !strings.Contains(err.Error(), "has no /etc/passwd") {
		t.Fatalf("err = %v", err)
	}
	o.User = "1:wheel"
	_, _, err = Generate(image(nil, []string{"sh"}), root, o)
	if err == nil || !strings.Contains(err.Error(), "has no /etc/group") {
		t.Fatalf("err = %v", err)
	}
}

// A hostile image's /etc/passwd and /etc/group pointing at host files must
// be resolved inside the rootfs, never read from the host.
func TestSymlinkedPasswdStaysInRoot(t *testing.T) {
	host := t.TempDir()
	hostPasswd := filepath.Join(host, "passwd")
	hostGroup := filepath.Join(host, "group")
	writeFile(t, hostPasswd, "canary:x:4711:4711:canary:/canary:/bin/sh\n")
	writeFile(t, hostGroup, "canarygrp:x:4712:canary\n")
	for _, kind := range []string{"absolute", "relative"} {
		t.Run(kind, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			for name, target := range map[string]string{"passwd": hostPasswd, "group": hostGroup} {
				if kind == "relative" {
					rel, err := filepath.Rel(filepath.Join(root, "etc"), target)
					if err != nil {
						t.Fatal(err)
					}
					target = rel
				}
				if err := os.Symlink(target, filepath.Join(root, "etc", name)); err != nil {
					t.Fatal(err)
				}
			}
			o := baseOpts()
			o.User = "canary"
			_, _, err := Generate(image(nil, []string{"sh"}), root, o)
			if err == nil {
				t.Fatal("user canary resolved from the host's passwd file")
			}
			o.User = "0:canarygrp"
			if _, _, err = Generate(image(nil, []string{"sh"}), root, o); err == nil {
				t.Fatal("group canarygrp resolved from the host's group file")
			}
			o.User = "4711"
			s := func() *specs.Spec { s, _ := gen(t, image(nil, []string{"sh"}), root, o); return s }()
			if s.Process.User.GID != 0 || slices.Contains(s.Process.Env, "HOME=/canary") {
				t.Fatalf("uid 4711 took the host's entry: %+v %q", s.Process.User, s.Process.Env)
			}
		})
	}
	// A symlink resolved inside the rootfs is followed there.
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "real/passwd"), "inside:x:5:6::/in:/bin/sh\n")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/real/passwd", filepath.Join(root, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	o := baseOpts()
	o.User = "inside"
	s, _ := gen(t, image(nil, []string{"sh"}), root, o)
	if s.Process.User.UID != 5 || s.Process.User.GID != 6 {
		t.Fatalf("user = %+v", s.Process.User)
	}
	// A directory where passwd should be is refused, not read.
	root = t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/passwd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Generate(image(nil, []string{"sh"}), root, o); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("err = %v", err)
	}
}

func TestCapabilities(t *testing.T) {
	root := testRootfs(t)
	def := slices.Clone(defaultCaps)
	with := func(extra ...string) []string { return append(slices.Clone(def), extra...) }
	without := func(drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(def), func(c string) bool { return slices.Contains(drop, c) })
	}
	all := oci.KnownCapabilities()
	tests := []struct {
		name       string
		add, drop  []string
		privileged bool
		want       []string
		wantErr    string
	}{
		{name: "default", want: def},
		{name: "add", add: []string{"NET_ADMIN", "cap_sys_ptrace"}, want: with("CAP_NET_ADMIN", "CAP_SYS_PTRACE")},
		{name: "drop", drop: []string{"CAP_MKNOD", "net_raw"}, want: without("CAP_MKNOD", "CAP_NET_RAW")},
		{name: "add beats drop", add: []string{"CHOWN"}, drop: []string{"CHOWN"}, want: def},
		{name: "drop all then add", add: []string{"KILL"}, drop: []string{"ALL"}, want: []string{"CAP_KILL"}},
		{name: "drop all", drop: []string{"all"}, want: nil},
		{name: "add all minus drop", add: []string{"ALL"}, drop: []string{"SYS_ADMIN"}, want: slices.DeleteFunc(slices.Clone(all), func(c string) bool { return c == "CAP_SYS_ADMIN" })},
		{name: "privileged", privileged: true, want: all},
		{name: "privileged with drop", privileged: true, drop: []string{"SYS_ADMIN"}, want: slices.DeleteFunc(slices.Clone(all), func(c string) bool { return c == "CAP_SYS_ADMIN" })},
		{name: "unknown", add: []string{"FLY"}, wantErr: `--cap-add "FLY"`},
		{name: "unknown drop", drop: []string{"CAP_NOPE"}, wantErr: `--cap-drop "CAP_NOPE"`},
	}
	sortCaps := func(c []string) []string {
		c = slices.Clone(c)
		slices.SortFunc(c, func(a, b string) int {
			x, _ := oci.CapabilityByName(a)
			y, _ := oci.CapabilityByName(b)
			return x - y
		})
		return c
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOpts()
			o.CapAdd, o.CapDrop, o.Privileged = tc.add, tc.drop, tc.privileged
			s, _, err := Generate(image(nil, []string{"sh"}), root, o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := s.Process.Capabilities
			want := sortCaps(tc.want)
			for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted} {
				if !slices.Equal(set, want) {
					t.Fatalf("caps = %q, want %q", set, want)
				}
			}
			if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
				t.Fatalf("inheritable %q ambient %q", c.Inheritable, c.Ambient)
			}
		})
	}
	// An older kernel knows fewer capabilities.
	o := baseOpts()
	o.Privileged = true
	o.HostLastCap = func() (int, error) { return 37, nil }
	s, _ := gen(t, image(nil, []string{"sh"}), root, o)
	if len(s.Process.Capabilities.Bounding) != 38 || slices.Contains(s.Process.Capabilities.Bounding, "CAP_PERFMON") {
		t.Fatalf("caps on a cap_last_cap=37 host: %q", s.Process.Capabilities.Bounding)
	}
}

func TestPrivileged(t *testing.T) {
	root := testRootfs(t)
	for _, priv := range []bool{false, true} {
		o := baseOpts()
		o.Privileged = priv
		s, _ := gen(t, image(nil, []string{"sh"}), root, o)
		if priv != (len(s.Linux.MaskedPaths) == 0 && len(s.Linux.ReadonlyPaths) == 0) {
			t.Errorf("privileged=%v: masked %q readonly %q", priv, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
		}
		if !priv && (!slices.Equal(s.Linux.MaskedPaths, maskedPaths) || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sysrq-trigger")) {
			t.Errorf("masked %q readonly %q", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
		}
		dev := s.Linux.Resources.Devices
		if priv != (len(dev) == 1 && dev[0].Allow && dev[0].Access == "rwm") {
			t.Errorf("privileged=%v: devices %+v", priv, dev)
		}
		if !priv && (dev[0].Allow || len(dev) < 2) {
			t.Errorf("unprivileged devices do not start with deny-all: %+v", dev)
		}
		for _, m := range s.Mounts {
			if m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup" {
				if slices.Contains(m.Options, "ro") == priv {
					t.Errorf("privileged=%v: %s options %q", priv, m.Destination, m.Options)
				}
			}
		}
	}
}

func TestUlimits(t *testing.T) {
	root := testRootfs(t)
	host := func(res int) (uint64, uint64, error) {
		switch res {
		case 7: // RLIMIT_NOFILE
			return 1024, 20000, nil
		case 6: // RLIMIT_NPROC
			return 100, 4000, nil
		}
		return rlimInfinity, rlimInfinity, nil
	}
	type rl = specs.POSIXRlimit
	tests := []struct {
		name    string
		ulimits []string
		want    []rl
		warns   []string
		wantErr string
	}{
		{name: "default clamped", want: []rl{{Type: "RLIMIT_NOFILE", Soft: 20000, Hard: 20000}},
			warns: []string{"ulimit nofile=1048576:1048576 clamped to 20000:20000 (the host's hard limit; berth lacks CAP_SYS_RESOURCE to raise it)"}},
		{name: "nofile within", ulimits: []string{"nofile=1024:2048"}, want: []rl{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 2048}}},
		{name: "single value", ulimits: []string{"nofile=512", "nproc=512"}, want: []rl{{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 512}, {Type: "RLIMIT_NPROC", Soft: 512, Hard: 512}}},
		{name: "soft kept under clamp", ulimits: []string{"nofile=1000:50000"}, want: []rl{{Type: "RLIMIT_NOFILE", Soft: 1000, Hard: 20000}},
			warns: []string{"ulimit nofile=1000:50000 clamped to 1000:20000 (the host's hard limit; berth lacks CAP_SYS_RESOURCE to raise it)"}},
		{name: "unlimited clamped", ulimits: []string{"nofile=2000", "nproc=-1"}, want: []rl{{Type: "RLIMIT_NOFILE", Soft: 2000, Hard: 2000}, {Type: "RLIMIT_NPROC", Soft: 4000, Hard: 4000}},
			warns: []string{"ulimit nproc=unlimited:unlimited clamped to 4000:4000 (the host's hard limit; berth lacks CAP_SYS_RESOURCE to raise it)"}},
		{name: "unlimited granted", ulimits: []string{"nofile=10", "core=unlimited"}, want: []rl{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 10}, {Type: "RLIMIT_CORE", Soft: rlimInfinity, Hard: rlimInfinity}}},
		{name: "unknown name", ulimits: []string{"files=10"}, wantErr: `unknown limit "files"`},
		{name: "no value", ulimits: []string{"nofile"}, wantErr: `ulimit "nofile"`},
		{name: "bad number", ulimits: []string{"nofile=ten"}, wantErr: `soft limit "ten"`},
		{name: "bad hard", ulimits: []string{"nofile=1:x"}, wantErr: `hard limit "x"`},
		{name: "soft above hard", ulimits: []string{"nofile=10:5"}, wantErr: "above the hard limit"},
		{name: "RLIMIT name", ulimits: []string{"RLIMIT_NOFILE=10"}, wantErr: "unknown limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOpts()
			o.Ulimits, o.HostRlimit = tc.ulimits, host
			s, warns, err := Generate(image(nil, []string{"sh"}), root, o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Rlimits, tc.want) {
				t.Fatalf("rlimits = %+v, want %+v", s.Process.Rlimits, tc.want)
			}
			var got []string
			for _, w := range warns {
				if w.Topic != "ulimit" && w.Topic != TopicDefaultUlimit {
					t.Errorf("warning topic %q", w.Topic)
				}
				got = append(got, w.String())
			}
			if !slices.Equal(got, tc.warns) {
				t.Fatalf("warnings = %q, want %q", got, tc.warns)
			}
		})
	}
}

func findMount(ms []specs.Mount, dest string) (specs.Mount, int) {
	for i, m := range ms {
		if m.Destination == dest {
			return m, i
		}
	}
	return specs.Mount{}, -1
}

func TestMounts(t *testing.T) {
	root := testRootfs(t)
	tests := []struct {
		name    string
		tmpfs   []string
		binds   []Bind
		check   map[string]specs.Mount
		wantErr string
	}{
		{name: "defaults", check: map[string]specs.Mount{
			"/dev/pts": {Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			"/dev/shm": {Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		}},
		{name: "tmpfs plain", tmpfs: []string{"/run"}, check: map[string]specs.Mount{
			"/run": {Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"noexec", "nosuid", "nodev"}}}},
		{name: "tmpfs options", tmpfs: []string{"/run/:size=64m,mode=1777,exec"}, check: map[string]specs.Mount{
			"/run": {Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "size=64m", "mode=1777", "exec"}}}},
		{name: "tmpfs replaces /dev/shm", tmpfs: []string{"/dev/shm:size=1g"}, check: map[string]specs.Mount{
			"/dev/shm": {Destination: "/dev/shm", Type: "tmpfs", Source: "tmpfs", Options: []string{"noexec", "nosuid", "nodev", "size=1g"}}}},
		{name: "binds", binds: []Bind{{Source: "/srv/data", Destination: "/data"}, {Source: "/etc/x/", Destination: "/cfg", ReadOnly: true}}, check: map[string]specs.Mount{
			"/data": {Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind"}},
			"/cfg":  {Destination: "/cfg", Type: "bind", Source: "/etc/x", Options: []string{"rbind", "ro"}}}},
		{name: "tmpfs relative", tmpfs: []string{"run"}, wantErr: "must be absolute"},
		{name: "tmpfs empty option", tmpfs: []string{"/run:size=1m,"}, wantErr: "empty mount option"},
		{name: "bind relative source", binds: []Bind{{Source: "data", Destination: "/data"}}, wantErr: `host path "data"`},
		{name: "bind relative dest", binds: []Bind{{Source: "/data", Destination: "data"}}, wantErr: `container path "data"`},
		{name: "duplicate", tmpfs: []string{"/data"}, binds: []Bind{{Source: "/d", Destination: "/data/"}}, wantErr: "two mounts on /data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOpts()
			o.Tmpfs, o.Binds = tc.tmpfs, tc.binds
			s, _, err := Generate(image(nil, []string{"sh"}), root, o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"} {
				if _, i := findMount(s.Mounts, d); i < 0 {
					t.Errorf("no mount on %s", d)
				}
			}
			seen := map[string]bool{}
			for _, m := range s.Mounts {
				if seen[m.Destination] {
					t.Errorf("two mounts on %s", m.Destination)
				}
				seen[m.Destination] = true
			}
			for dest, want := range tc.check {
				got, i := findMount(s.Mounts, dest)
				if i < 0 || got.Type != want.Type || got.Source != want.Source || !slices.Equal(got.Options, want.Options) {
					t.Errorf("mount %s = %+v, want %+v", dest, got, want)
				}
			}
			// /dev must be mounted before what lies under it.
			_, dev := findMount(s.Mounts, "/dev")
			_, shm := findMount(s.Mounts, "/dev/shm")
			if shm < dev {
				t.Errorf("/dev/shm (%d) before /dev (%d)", shm, dev)
			}
		})
	}
}

func TestVolumesWarn(t *testing.T) {
	img := image(nil, []string{"sh"})
	img.Config.Volumes = map[string]struct{}{"/var/lib/db": {}, "/data": {}}
	_, warns := gen(t, img, testRootfs(t), baseOpts())
	if len(warns) != 1 || warns[0].Topic != "volume" || !strings.Contains(warns[0].String(), "/data, /var/lib/db") {
		t.Fatalf("warnings = %v", warns)
	}
}

func TestNetwork(t *testing.T) {
	root := testRootfs(t)
	for mode, wantNet := range map[string]bool{"": true, "none": true, "host": false} {
		o := baseOpts()
		o.NetworkMode = mode
		s, _ := gen(t, image(nil, []string{"sh"}), root, o)
		var types []specs.LinuxNamespaceType
		for _, n := range s.Linux.Namespaces {
			if n.Path != "" {
				t.Errorf("namespace %s joins %s", n.Type, n.Path)
			}
			types = append(types, n.Type)
		}
		for _, want := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.CgroupNamespace} {
			if !slices.Contains(types, want) {
				t.Errorf("mode %q: no %s namespace", mode, want)
			}
		}
		if slices.Contains(types, specs.NetworkNamespace) != wantNet || slices.Contains(types, specs.UserNamespace) {
			t.Errorf("mode %q: namespaces %v", mode, types)
		}
	}
	o := baseOpts()
	o.NetworkMode = "bridge"
	if _, _, err := Generate(image(nil, []string{"sh"}), root, o); err == nil || !strings.Contains(err.Error(), `"bridge"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestCwd(t *testing.T) {
	root := testRootfs(t)
	tests := []struct{ opt, image, want, wantErr string }{
		{want: "/"},
		{image: "/app", want: "/app"},
		{opt: "/work/", image: "/app", want: "/work"},
		{opt: "rel", wantErr: `"rel"`},
		{image: "app", wantErr: `"app"`},
	}
	for _, tc := range tests {
		img := image(nil, []string{"sh"})
		img.Config.WorkingDir = tc.image
		o := baseOpts()
		o.WorkingDir = tc.opt
		s, _, err := Generate(img, root, o)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "absolute") {
				t.Errorf("%+v: err = %v", tc, err)
			}
			continue
		}
		if err != nil || s.Process.Cwd != tc.want {
			t.Errorf("%+v: cwd = %v, %v", tc, s, err)
		}
	}
}

func TestResourcesAndFlags(t *testing.T) {
	root := testRootfs(t)
	o := baseOpts()
	o.Memory, o.CPUs, o.PidsLimit = 256<<20, 1.5, 100
	o.ReadOnly, o.NoNewPrivileges, o.CgroupsPath = true, true, "/berth/c1"
	o.Labels = map[string]string{"a": "opt"}
	img := image(nil, []string{"sh"})
	img.Config.Labels = map[string]string{"a": "img", "b": "img"}
	s, _ := gen(t, img, root, o)
	r := s.Linux.Resources
	if *r.Memory.Limit != 256<<20 || *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 || *r.Pids.Limit != 100 {
		t.Fatalf("resources = %+v %+v %+v", r.Memory, r.CPU, r.Pids)
	}
	if !s.Root.Readonly || s.Root.Path != root || !s.Process.NoNewPrivileges || s.Linux.CgroupsPath != "/berth/c1" {
		t.Fatalf("spec = %+v", s)
	}
	if s.Annotations["a"] != "opt" || s.Annotations["b"] != "img" {
		t.Fatalf("annotations = %v", s.Annotations)
	}
	s, _ = gen(t, image(nil, []string{"sh"}), root, baseOpts())
	if r := s.Linux.Resources; r.Memory != nil || r.CPU != nil || r.Pids != nil || s.Root.Readonly || s.Process.NoNewPrivileges || s.Annotations != nil {
		t.Fatalf("defaults = %+v", s)
	}
	for _, bad := range []Options{{Memory: -1}, {CPUs: -1}, {CPUs: 0.001}, {PidsLimit: -2}} {
		b := baseOpts()
		b.Memory, b.CPUs, b.PidsLimit = bad.Memory, bad.CPUs, bad.PidsLimit
		if _, _, err := Generate(image(nil, []string{"sh"}), root, b); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, _, err := Generate(image(nil, []string{"sh"}), "", baseOpts()); err == nil {
		t.Error("empty rootfs accepted")
	}
}

// The generated spec survives a JSON round trip through the runtime's
// own config.json parser and validator.
func TestRuntimeAcceptsSpec(t *testing.T) {
	root := testRootfs(t)
	for _, o := range []Options{
		baseOpts(),
		func() Options {
			o := baseOpts()
			o.Privileged, o.User, o.Tty, o.NetworkMode = true, "app", true, "host"
			o.Tmpfs, o.Binds = []string{"/run:size=1m"}, []Bind{{Source: "/srv", Destination: "/srv", ReadOnly: true}}
			o.Ulimits, o.Memory, o.CPUs, o.PidsLimit = []string{"nproc=10:20"}, 1<<30, 2, -1
			return o
		}(),
	} {
		s, _ := gen(t, image([]string{"/init"}, []string{"run"}), root, o)
		data, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := oci.ParseSpec(data)
		if err != nil {
			t.Fatalf("runtime refuses the spec: %v\n%s", err, data)
		}
		again, _ := json.Marshal(back)
		if string(again) != string(data) {
			t.Fatalf("round trip changed the spec:\n%s\n%s", data, again)
		}
	}
}

// With the real host limits nothing granted exceeds the host's hard limit.
func TestRealHostLimits(t *testing.T) {
	o := Options{Ulimits: []string{"nproc=unlimited"}}
	s, _ := gen(t, image(nil, []string{"sh"}), testRootfs(t), o)
	for _, r := range s.Process.Rlimits {
		res, _ := oci.RlimitByName(r.Type)
		_, max, err := hostRlimit(res)
		if err != nil {
			t.Fatal(err)
		}
		if r.Hard > max || r.Soft > r.Hard {
			t.Errorf("%s = %d:%d, host hard %d", r.Type, r.Soft, r.Hard, max)
		}
	}
	if err := oci.ValidateProcess(s.Process); err != nil {
		t.Fatal(err)
	}
}

// TestUserNamespace: mappings give the spec a user namespace with them;
// a process user or group outside them is refused by name; without them
// there is no user namespace.
func TestUserNamespace(t *testing.T) {
	root := testRootfs(t)
	uids := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 1024}}
	gids := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 1024}}
	o := baseOpts()
	o.UIDMappings, o.GIDMappings = uids, gids
	s, _, err := Generate(image(nil, []string{"sh"}), root, o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UserNamespace && n.Path == "" }) {
		t.Errorf("no new user namespace: %v", s.Linux.Namespaces)
	}
	if !slices.Equal(s.Linux.UIDMappings, uids) || !slices.Equal(s.Linux.GIDMappings, gids) {
		t.Errorf("mappings: %v %v", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	o.User = "app" // 1000:1000, groups wheel (10), audio (29): all mapped
	if _, _, err := Generate(image(nil, []string{"sh"}), root, o); err != nil {
		t.Errorf("a mapped user: %v", err)
	}
	o.User = "4000"
	if _, _, err := Generate(image(nil, []string{"sh"}), root, o); err == nil || !strings.Contains(err.Error(), "user 4000 is outside") {
		t.Errorf("an unmapped user: %v", err)
	}
	o.User = "app"
	o.GroupAdd = []string{"5000"}
	if _, _, err := Generate(image(nil, []string{"sh"}), root, o); err == nil || !strings.Contains(err.Error(), "group 5000 is outside") {
		t.Errorf("an unmapped supplementary group: %v", err)
	}
	o = baseOpts()
	o.UIDMappings = uids
	if _, _, err := Generate(image(nil, []string{"sh"}), root, o); err == nil {
		t.Error("uid mappings without gid mappings were taken")
	}
	s, _, err = Generate(image(nil, []string{"sh"}), root, baseOpts())
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UserNamespace }) || len(s.Linux.UIDMappings) > 0 {
		t.Errorf("a user namespace without mappings: %v", s.Linux.Namespaces)
	}
}

// TestClampToBounding: a capability outside berth's own bounding set is
// dropped with a warning when it came with --privileged or ALL, and is an
// error when --cap-add names it.
func TestClampToBounding(t *testing.T) {
	noSysResource := func() (uint64, error) { return ^uint64(0) &^ (1 << 24), nil }
	caps, warns, err := clampToBounding([]string{"CAP_CHOWN", "CAP_SYS_RESOURCE", "CAP_SYS_TIME"}, []string{"ALL"}, noSysResource)
	if err != nil || !slices.Equal(caps, []string{"CAP_CHOWN", "CAP_SYS_TIME"}) || len(warns) != 1 || !strings.Contains(warns[0].Message, "CAP_SYS_RESOURCE") {
		t.Errorf("privileged on a host without CAP_SYS_RESOURCE: %q %v %v", caps, warns, err)
	}
	if _, _, err := clampToBounding([]string{"CAP_CHOWN", "CAP_SYS_RESOURCE"}, []string{"sys_resource"}, noSysResource); err == nil || !strings.Contains(err.Error(), "--cap-add CAP_SYS_RESOURCE") {
		t.Errorf("--cap-add of a capability berth lacks: %v", err)
	}
	caps, warns, err = clampToBounding([]string{"CAP_CHOWN"}, nil, noSysResource)
	if err != nil || len(caps) != 1 || warns != nil {
		t.Errorf("default caps: %q %v %v", caps, warns, err)
	}
}

// TestStrictGroups: the user's memberships in the image's /etc/group are
// its supplementary groups (docker's rule, the CRI's Merge), unless
// StrictGroups (the CRI's Strict), when only GroupAdd's are.
func TestStrictGroups(t *testing.T) {
	root := testRootfs(t)
	o := baseOpts()
	o.User = "app" // 1000:1000, member of wheel (10) and audio (29)
	o.GroupAdd = []string{"1234"}
	s, _, err := Generate(image(nil, []string{"sh"}), root, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Process.User.AdditionalGids; !slices.Equal(got, []uint32{1000, 10, 29, 1234}) {
		t.Errorf("merged groups: %v, want [1000 10 29 1234]", got)
	}
	o.StrictGroups = true
	if s, _, err = Generate(image(nil, []string{"sh"}), root, o); err != nil {
		t.Fatal(err)
	}
	if got := s.Process.User.AdditionalGids; !slices.Equal(got, []uint32{1000, 1234}) {
		t.Errorf("strict groups: %v, want [1000 1234]", got)
	}
}
