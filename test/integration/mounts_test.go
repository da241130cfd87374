//go:build linux

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestBindVolumeOptions: issue 16, nothing silently ignored. -v creates a
// missing host directory and resolves a relative source against the
// CLI's directory; each option is honoured (propagation in the
// container's mountinfo, nocopy) or refused by name with exit 125.
func TestBindVolumeOptions(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		return e.run(append([]string{"run", "--rm", "--network", "none"}, args...)...)
	}

	// A missing host directory is created (mkdir -p, 0755).
	missing := filepath.Join(dir, "made", "deep")
	run("-v", missing+":/x", demoImage, "sh", "-c", "echo in > /x/f")
	if fi, err := os.Stat(missing); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Errorf("-v with a missing host directory: %v %v", fi, err)
	} else if b, _ := os.ReadFile(filepath.Join(missing, "f")); string(b) != "in\n" {
		t.Errorf("the created directory is not the bind: %q", b)
	}

	// A relative source is the CLI's directory's.
	if err := os.WriteFile(filepath.Join(dir, "made", "rel"), []byte("relative\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := e.command("run", "--rm", "--network", "none", "-v", "./deep:/d", "-v", ".:/m:ro", demoImage, "sh", "-c", "cat /m/rel; cat /d/f")
	cmd.Dir = filepath.Join(dir, "made")
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "relative\nin\n" {
		t.Errorf("-v ./deep and -v .: %v %q", err, out)
	}

	// Propagation, on a host mount that is shared.
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(shared, shared, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(shared, syscall.MNT_DETACH) })
	if err := syscall.Mount("", shared, "", syscall.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	tags := func(opts string, mount ...string) string {
		t.Helper()
		args := []string{"-v", shared + ":/p" + opts}
		if mount != nil {
			args = []string{"--mount", "type=bind,source=" + shared + ",target=/p," + mount[0]}
		}
		line := strings.Fields(run(append(args, demoImage, "sh", "-c", `grep " /p " /proc/self/mountinfo`)...))
		var out []string
		for _, f := range line[6:] {
			if f == "-" {
				break
			}
			out = append(out, strings.Split(f, ":")[0])
		}
		return strings.Join(out, " ")
	}
	for _, tt := range []struct{ opts, mount, want string }{
		{"", "", ""},
		{":rprivate", "", ""},
		{":ro,private", "", ""},
		{":rshared", "", "shared"},
		{":shared,rw", "", "shared"},
		{":rslave", "", "master"},
		{":slave", "", "master"},
		{"", "bind-propagation=rslave", "master"},
		{"", "bind-propagation=rshared,readonly,consistency=cached", "shared"},
	} {
		var got string
		if tt.mount != "" {
			got = tags("", tt.mount)
		} else {
			got = tags(tt.opts)
		}
		if got != tt.want {
			t.Errorf("propagation %q%q: mountinfo tags %q, want %q", tt.opts, tt.mount, got, tt.want)
		}
	}

	// nocopy: a new named volume stays empty of the image's /etc.
	run("-v", "copied:/etc", demoImage, "true")
	run("-v", "nocopied:/etc:nocopy", demoImage, "true")
	run("--mount", "type=volume,source=nocopied2,target=/etc,volume-nocopy", demoImage, "true")
	for name, want := range map[string]bool{"copied": true, "nocopied": false, "nocopied2": false} {
		var vols []struct{ Mountpoint string }
		if err := json.Unmarshal([]byte(e.run("volume", "inspect", name)), &vols); err != nil || len(vols) != 1 {
			t.Fatalf("volume inspect %s: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(vols[0].Mountpoint, "passwd")); (err == nil) != want {
			t.Errorf("volume %s: has the image's passwd %v, want %v", name, err == nil, want)
		}
	}
	e.run("volume", "rm", "copied", "nocopied", "nocopied2")

	// bind-recursive: disabled leaves out the mounts below the source,
	// readonly makes them read-only too; the default binds them writable.
	rec := filepath.Join(dir, "rec")
	os.MkdirAll(filepath.Join(rec, "sub"), 0o755)
	if err := syscall.Mount("tmpfs", filepath.Join(rec, "sub"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(filepath.Join(rec, "sub"), syscall.MNT_DETACH) })
	os.WriteFile(filepath.Join(rec, "sub", "f"), []byte("below\n"), 0o644)
	probe := `cat /c/sub/f 2>/dev/null || echo absent; touch /c/sub/w 2>/dev/null && echo writable || echo read-only`
	for opts, want := range map[string]string{
		"":                                  "below\nwritable\n",
		",ro":                               "below\nwritable\n",
		",bind-recursive=writable,ro":       "below\nwritable\n",
		",bind-recursive=disabled":          "absent\nwritable\n",
		",readonly,bind-recursive=readonly": "below\nread-only\n",
	} {
		if out := run("--mount", "type=bind,source="+rec+",target=/c"+opts, demoImage, "sh", "-c", probe); out != want {
			t.Errorf("--mount bind%s: %q, want %q", opts, out, want)
		}
	}

	// volume-subpath mounts a directory of the volume; volume-opt makes
	// a new volume the local driver's mount (here a tmpfs).
	run("-v", "sub:/v", demoImage, "sh", "-c", "mkdir -p /v/a/b; echo deep > /v/a/b/f")
	if out := run("--mount", "type=volume,source=sub,target=/s,volume-subpath=a/b", demoImage, "cat", "/s/f"); out != "deep\n" {
		t.Errorf("volume-subpath: %q", out)
	}
	if out := run("--mount", `type=volume,source=vopt,target=/o,volume-opt=type=tmpfs,volume-opt=device=tmpfs,"volume-opt=o=size=1m,mode=700"`,
		demoImage, "sh", "-c", `grep " /o " /proc/self/mountinfo`); !strings.Contains(out, " - tmpfs ") || !strings.Contains(out, "mode=700") {
		t.Errorf("volume-opt: mountinfo %q", out)
	}
	if out := e.run("volume", "inspect", "--format", "{{.Options.type}} {{.Options.o}}", "vopt"); out != "tmpfs size=1m,mode=700\n" {
		t.Errorf("volume-opt: the volume's options %q", out)
	}
	e.run("volume", "rm", "sub", "vopt")

	// Refusals: exit 125, naming what is refused.
	selinux := false
	if _, err := os.Stat("/sys/fs/selinux/enforce"); err == nil {
		selinux = true
	}
	private := filepath.Join(dir, "private")
	os.Mkdir(private, 0o755)
	refusals := []struct {
		args []string
		want string
	}{
		{[]string{"-v", dir + ":/x:bogus"}, `unknown option "bogus"`},
		{[]string{"-v", dir + ":/x:ro,rw"}, "give one of ro or rw"},
		{[]string{"-v", dir + ":/x:nocopy"}, "nocopy is for volumes"},
		{[]string{"-v", "vol:/x:rshared"}, "for binds of a host path"},
		{[]string{"-v", private + ":/x:rshared"}, "which is not shared"},
		{[]string{"--mount", "type=bind,source=" + filepath.Join(dir, "absent") + ",target=/x"}, "bind source path does not exist"},
		{[]string{"--mount", "type=bind,source=" + dir + ",target=/x,foo=bar"}, `unknown key "foo"`},
		{[]string{"--mount", "type=bind,source=" + dir + ",target=/x,tmpfs-size=1m"}, "tmpfs-size is for type=tmpfs"},
		{[]string{"--mount", "type=bind,source=" + dir + ",target=/x,bind-recursive=readonly"}, "bind-recursive=readonly needs readonly"},
		{[]string{"--mount", "type=volume,source=vol,target=/x,volume-subpath=../up"}, "must be a relative path inside the volume"},
		{[]string{"--mount", "type=volume,source=vol,target=/x,volume-subpath=a"}, "needs an existing volume"},
		{[]string{"--mount", "type=volume,source=vol,target=/x,volume-label=a=b"}, "volume-label"},
	}
	if !selinux {
		refusals = append(refusals,
			struct {
				args []string
				want string
			}{[]string{"-v", dir + ":/x:z"}, "this host has no SELinux: drop the :z"},
			struct {
				args []string
				want string
			}{[]string{"-v", dir + ":/x:ro,Z"}, "this host has no SELinux: drop the :Z"})
	}
	for _, r := range refusals {
		args := append(append([]string{"run", "--rm", "--network", "none"}, r.args...), demoImage, "true")
		if code, _, errOut := e.exitCode(args...); code != 125 || !strings.Contains(errOut, r.want) {
			t.Errorf("%q: exit %d %q, want 125 and %q", r.args, code, errOut, r.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "absent")); err == nil {
		t.Error("--mount created a missing bind source")
	}
	if out := strings.TrimSpace(e.run("volume", "ls", "-q")); out != "" {
		t.Errorf("refused runs left volumes: %q", out)
	}
}

// TestRunRefusesUnhonoured: issue 16 for --platform and --security-opt
// label=/apparmor=: what berth cannot honour is refused with exit 125,
// never run otherwise silently; the unconfined values are taken.
func TestRunRefusesUnhonoured(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	_, selinuxErr := os.Stat("/sys/fs/selinux/enforce")
	_, apparmorErr := os.Stat("/sys/kernel/security/apparmor")
	labelWant, apparmorWant := "this host has no SELinux", "this host has no AppArmor"
	if selinuxErr == nil {
		labelWant = "cannot apply SELinux labels"
	}
	if apparmorErr == nil {
		apparmorWant = "cannot apply AppArmor profiles"
	}
	for _, r := range []struct {
		args []string
		want string
	}{
		{[]string{"--platform", "linux/arm64"}, "is for linux/amd64, not linux/arm64: pull it for that platform first"},
		{[]string{"--platform", "linux/arm64", "--pull", "never"}, "not linux/arm64"},
		{[]string{"--security-opt", "label=type:svirt_t"}, labelWant},
		{[]string{"--security-opt", "label=level:s0"}, labelWant},
		{[]string{"--security-opt", "apparmor=docker-default"}, apparmorWant},
	} {
		args := append(append([]string{"run", "--rm", "--network", "none"}, r.args...), demoImage, "true")
		if code, _, errOut := e.exitCode(args...); code != 125 || !strings.Contains(errOut, r.want) {
			t.Errorf("%q: exit %d %q, want 125 and %q", r.args, code, errOut, r.want)
		}
	}
	e.run("run", "--rm", "--network", "none", "--platform", "linux/amd64", "--security-opt", "label=disable",
		"--security-opt", "label:disable", "--security-opt", "apparmor=unconfined", demoImage, "true")
	if out := strings.TrimSpace(e.run("ps", "-aq")); out != "" {
		t.Errorf("refused runs left containers: %q", out)
	}
}
