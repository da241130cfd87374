package integration

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/image/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// critest, cri-tools' validation suite, against `berth serve --cri-socket`.
//
// critest pulls from registry.k8s.io and gcr.io, which this machine cannot
// reach: stand-ins are built here (busybox from Debian's busybox-static,
// with the users, groups and commands the specs expect) and pushed to a
// registry on loopback under the same repository paths, which berth's
// registry configuration makes the mirror of all three hosts. The names
// the kubelet-like client sees stay the upstream ones.
//
// Every spec runs (about a minute). make test requires at least
// critestMinPassed passes and no failure outside critestKnownFailures;
// BERTH_CRITEST=full (make critest) only reports. BERTH_CRITEST_FOCUS=RE
// runs only the specs RE matches (ginkgo's --focus), for work on one part:
// no failure outside the known ones, and at least one pass.
// BERTH_CRITEST_HANDLER=vm runs every spec's pods under that runtime
// handler (each pod one VM; minutes under TCG). BERTH_CRITEST_CNI=1
// puts the pods on a node's CNI configuration (serve --pod-network cni). The one spec that pins
// an upstream digest cannot pass offline and is skipped, by name.

// critestUnreachable are specs no runtime can pass offline.
var critestUnreachable = []string{
	"public image with digest should be pulled and removed", // pins an upstream manifest digest
}

// critestMinPassed guards what passes here (113 of 142 at this step;
// issue 11 asks for 86, containerd 1.6.20 passes 84): a spec that turns
// skipped or is lost fails make test.
const critestMinPassed = 110

// critestKnownFailures are the specs that fail here, each with why.
var critestKnownFailures = map[string]string{
	// Its image's `sh -c ls` must exec /bin/ls to be confined by the
	// masked path; Debian's busybox-static runs ls inside the shell.
	"runtime should support MaskedPaths": "busybox-static's sh runs ls in-process",
}

func critestPath(t *testing.T) string {
	if p := os.Getenv("BERTH_CRITEST_BIN"); p != "" {
		return p
	}
	if p := os.Getenv("BERTH_CRICTL"); p != "" {
		if c := filepath.Join(filepath.Dir(p), "critest"); fileExists(c) {
			return c
		}
	}
	t.Skip("no critest: run scripts/build-critools.sh and set BERTH_CRICTL to its bin/crictl (make test does)")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// critestBase is a busybox root with the accounts critest's images have.
func critestBase(t *testing.T) imagetest.Layer {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("no /bin/busybox (apt-get install busybox-static): %v", err)
	}
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	entries := []imagetest.Entry{
		{Name: "bin/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "bin/busybox", Body: string(bb), Mode: 0o755},
		{Name: "etc/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "etc/passwd", Mode: 0o644, Body: "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/sh\nuser1000:x:1000:1000::/home/user1000:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"},
		{Name: "etc/group", Mode: 0o644, Body: "root:x:0:\nwww-data:x:33:\nuser1000:x:1000:\ngroup50000:x:50000:user1000\nnogroup:x:65534:\n"},
		{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
		{Name: "var/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "var/www/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "var/www/index.html", Mode: 0o644, Body: "<html><body>Welcome to nginx! (berth's stand-in)</body></html>\n"},
		{Name: "root/", Type: tar.TypeDir, Mode: 0o700},
		{Name: "home/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "home/user1000/", Type: tar.TypeDir, Mode: 0o755, UID: 1000, GID: 1000},
		{Name: "var/run/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/bin/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/sbin/", Type: tar.TypeDir, Mode: 0o755},
		// What Debian's busybox-static lacks and the specs run: pgrep
		// and ipcs -m, from /proc.
		{Name: "usr/bin/pgrep", Mode: 0o755, Body: "#!/bin/sh\n# berth's stand-in: pgrep PATTERN prints the pids whose name holds PATTERN\nfound=1\nfor d in /proc/[0-9]*; do\n\tread -r n < $d/comm 2>/dev/null || continue\n\tcase $n in *$1*) echo ${d#/proc/}; found=0;; esac\ndone\nexit $found\n"},
		{Name: "usr/bin/ipcs", Mode: 0o755, Body: "#!/bin/sh\n# berth's stand-in: ipcs -m from /proc/sysvipc/shm\necho '------ Shared Memory Segments --------'\necho 'key        shmid      owner      perms      bytes      nattch'\ntail -n +2 /proc/sysvipc/shm | while read key shmid perms size cpid lpid nattch uid rest; do\n\tprintf '0x%08x %-10s %-10s %-10s %-10s %-10s\\n' $key $shmid $uid $perms $size $nattch\ndone\n"},
		// nginx: busybox httpd under a script named nginx that writes
		// nginx's pid file and names itself "master process" as nginx's
		// master does.
		{Name: "usr/sbin/nginx", Mode: 0o755, Body: "#!/bin/sh\n# berth's stand-in for nginx\n[ \"$1\" = \"master process\" ] || exec /usr/sbin/nginx \"master process\" \"$@\"\necho $$ > /var/run/nginx.pid\nhttpd -f -p ${NGINX_PORT:-80} -h /var/www &\ntrap 'kill $!; exit 0' TERM INT\nwait\n"},
	}
	for _, a := range strings.Fields(string(list)) {
		if a != "busybox" {
			entries = append(entries, imagetest.Entry{Name: "bin/" + a, Type: tar.TypeSymlink, Linkname: "busybox"})
		}
	}
	return imagetest.NewLayer(t, imagetest.Gzip, entries)
}

// nonewprivsLayer is the nonewprivs image's program: a setuid-root
// static binary that prints its effective uid (with no_new_privs the
// setuid bit does not raise it), compiled here with gcc (a build
// dependency of berth's monitor).
func nonewprivsLayer(t *testing.T) imagetest.Layer {
	dir := t.TempDir()
	src := filepath.Join(dir, "nnp.c")
	os.WriteFile(src, []byte("#include <stdio.h>\n#include <unistd.h>\nint main(void){printf(\"Effective uid: %d\\n\", (int)geteuid());return 0;}\n"), 0o644)
	if out, err := exec.Command("gcc", "-static", "-O2", "-o", filepath.Join(dir, "nnp"), src).CombinedOutput(); err != nil {
		t.Fatalf("build the nonewprivs stand-in: %v: %s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "nnp"))
	if err != nil {
		t.Fatal(err)
	}
	return imagetest.NewLayer(t, imagetest.Gzip, []imagetest.Entry{{Name: "nnp", Body: string(bin), Mode: 0o4755}})
}

// pushCritestImages pushes the stand-ins under the mirrors' paths (the
// registry host dropped).
func pushCritestImages(t *testing.T, reg *registrytest.Registry) {
	base := critestBase(t)
	img := func(cfg ocispec.ImageConfig) imagetest.Image {
		cfg.Env = append(cfg.Env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
		if cfg.Cmd == nil {
			cfg.Cmd = []string{"sh"}
		}
		return imagetest.NewImage(t, "linux", "amd64", cfg, base)
	}
	// Each repository its own image (a label tells them apart), as
	// upstream: a spec counts the tags of one image ID.
	own := func(repo string) imagetest.Image {
		return img(ocispec.ImageConfig{Labels: map[string]string{"stand-in-for": repo}})
	}
	const staging = "k8s-staging-cri-tools/"
	push := func(i imagetest.Image, ref string) {
		repo, tag, _ := strings.Cut(ref, ":")
		i.Push(t, reg, repo, tag)
	}
	push(img(ocispec.ImageConfig{}), "e2e-test-images/busybox:1.29-2")
	push(img(ocispec.ImageConfig{Entrypoint: []string{"/usr/sbin/nginx"}, Cmd: []string{"-g", "daemon off;"}, ExposedPorts: map[string]struct{}{"80/tcp": {}}}), "e2e-test-images/nginx:1.14-2")
	push(img(ocispec.ImageConfig{Entrypoint: []string{"/usr/sbin/nginx"}, Cmd: []string{"-g", "daemon off;"}, Env: []string{"NGINX_PORT=12003"}, Labels: map[string]string{"stand-in-for": "hostnet-nginx"}}), staging+"hostnet-nginx-amd64:latest")
	push(img(ocispec.ImageConfig{Cmd: []string{"sh", "-c", "echo 'httpd (berth stand-in) serving on :80'; exec httpd -f -p 80 -h /var/www"}, ExposedPorts: map[string]struct{}{"80/tcp": {}}}), "e2e-test-images/httpd:2.4.39-4")
	push(imagetest.NewImage(t, "linux", "amd64", ocispec.ImageConfig{Cmd: []string{"/nnp"}, Env: []string{"PATH=/bin"}}, base, nonewprivsLayer(t)), "e2e-test-images/nonewprivs:1.3")
	push(img(ocispec.ImageConfig{Entrypoint: []string{"sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait; done"}, Cmd: []string{}}), "pause:3.9")
	for _, ref := range []string{"test-image-latest:latest", "test-image-tag:test", "test-image-tag:all", "test-image-tags:1", "test-image-tags:2", "test-image-tags:3"} {
		repo, _, _ := strings.Cut(ref, ":")
		push(own(repo), staging+ref)
	}
	for i := 1; i <= 3; i++ {
		push(img(ocispec.ImageConfig{Labels: map[string]string{"stand-in": strconv.Itoa(i)}}), fmt.Sprintf("%stest-image-%d:latest", staging, i))
	}
	for repo, user := range map[string]string{
		"test-image-user-uid": "1002", "test-image-user-username": "www-data",
		"test-image-user-uid-group": "1003:users", "test-image-user-username-group": "www-data:www-data",
		"test-image-predefined-group": "1000",
	} {
		push(img(ocispec.ImageConfig{User: user}), staging+repo+":latest")
	}
}

var critestSummary = regexp.MustCompile(`(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped`)

func TestCritest(t *testing.T) {
	critest := critestPath(t)
	full := os.Getenv("BERTH_CRITEST") == "full"
	e := newEngine(t)
	reg := registrytest.Start(t, registrytest.Options{})
	pushCritestImages(t, reg)
	mirror := "http://" + reg.Addr
	cfg := map[string]any{"registries": map[string]any{
		"registry.k8s.io": map[string]any{"mirrors": []string{mirror}},
		"k8s.gcr.io":      map[string]any{"mirrors": []string{mirror}},
		"gcr.io":          map[string]any{"mirrors": []string{mirror}},
	}}
	data, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(t.TempDir(), "registries.json")
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	e.env = append(e.env, "BERTH_REGISTRY_CONFIG="+cfgPath)
	serveArgs := []string{"--cri-socket", filepath.Join(t.TempDir(), "api.sock")}
	if os.Getenv("BERTH_CRITEST_CNI") == "1" {
		// The pods on a node's CNI configuration (bridge with ipMasq,
		// host-local, portmap) instead of berth's network.
		dir := t.TempDir()
		conf := filepath.Join(dir, "net.d")
		os.MkdirAll(conf, 0o755)
		os.WriteFile(filepath.Join(conf, "10-critest.conflist"), []byte(`{"cniVersion":"1.0.0","name":"critest","plugins":[
 {"type":"bridge","bridge":"bcritest0","isGateway":true,"ipMasq":true,"hairpinMode":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.133.20.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":"`+filepath.Join(dir, "ipam")+`"}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}`), 0o644)
		t.Cleanup(func() { exec.Command("ip", "link", "del", "bcritest0").Run() })
		serveArgs = append(serveArgs, "--pod-network", "cni", "--cni-conf-dir", conf)
	}
	sock := e.serveWith(serveArgs...).sock

	crictlCfg := filepath.Join(t.TempDir(), "crictl.yaml")
	os.WriteFile(crictlCfg, nil, 0o644)
	args := []string{"--config", crictlCfg, "--runtime-endpoint", "unix://" + sock, "--image-endpoint", "unix://" + sock,
		"--ginkgo.no-color", "--ginkgo.timeout=25m"}
	skips := make([]string, len(critestUnreachable))
	for i, s := range critestUnreachable {
		skips[i] = regexp.QuoteMeta(s)
	}
	args = append(args, "--ginkgo.skip="+strings.Join(skips, "|"))
	if h := os.Getenv("BERTH_CRITEST_HANDLER"); h != "" {
		// Every spec's pods under that runtime handler ("vm": each pod
		// one VM).
		args = append(args, "-runtime-handler", h)
	}
	focus := os.Getenv("BERTH_CRITEST_FOCUS")
	minPassed := critestMinPassed
	if focus != "" {
		args = append(args, "--ginkgo.focus="+focus)
		minPassed = 1
	}
	cmd := exec.Command(critest, args...)
	cmd.Dir = t.TempDir()
	// critest's own temporary directories (its pods' log directories,
	// podLogTest*) are left behind by it: made here, they go with the
	// test.
	tmp, err := os.MkdirTemp("", "critest-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	out, err := cmd.CombinedOutput()
	if p := os.Getenv("BERTH_CRITEST_OUTPUT"); p != "" {
		// make critest keeps the whole report for reading.
		os.WriteFile(p, out, 0o644)
	}
	m := critestSummary.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("critest printed no summary (%v):\n%s", err, out)
	}
	passed, _ := strconv.Atoi(m[1])
	failed, _ := strconv.Atoi(m[2])
	skipped, _ := strconv.Atoi(m[4])
	t.Logf("critest: %d passed, %d failed, %d skipped; skipped by name as unreachable offline: %q",
		passed, failed, skipped, critestUnreachable)
	var failures []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "  [FAIL]") {
			failures = append(failures, strings.TrimSpace(l))
		}
	}
	if full {
		t.Logf("failed specs:\n%s", strings.Join(failures, "\n"))
		return
	}
	var unknown []string
	for _, f := range failures {
		known := false
		for spec, why := range critestKnownFailures {
			if strings.HasSuffix(strings.TrimSuffix(f, " [Conformance]"), spec) {
				t.Logf("known failure (%s): %s", why, f)
				known = true
			}
		}
		if !known {
			unknown = append(unknown, f)
		}
	}
	if passed < minPassed || len(unknown) > 0 {
		t.Errorf("critest: %d passed (at least %d wanted); failures not known to fail here:\n%s\n\n%s", passed, minPassed, strings.Join(unknown, "\n"), out)
	}
}
