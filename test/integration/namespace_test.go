package integration

import (
	"strings"
	"testing"
	"time"
)

// TestStoreNamespaces: containers made with --namespace live apart: not
// listed, named or removed from the default namespace, while their
// monitors, exit handling and restarts work as any container's; what
// all share (images, volumes) is guarded across namespaces.
func TestStoreNamespaces(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	k8s := func(args ...string) []string { return append([]string{"--namespace", "k8s"}, args...) }
	id := strings.TrimSpace(e.run(k8s("run", "-d", "--name", "apart", "-v", "shared:/data", "--restart", "on-failure:1", demoImage, "sh", "-c", "echo hi; [ -f /data/again ] && exec sleep 100; touch /data/again; exit 3")...))
	if got := strings.TrimSpace(e.run("ps", "-aq", "--no-trunc")); got != "" {
		t.Errorf("berth ps -a in the default namespace lists %q", got)
	}
	if got := strings.TrimSpace(e.run(k8s("ps", "-aq", "--no-trunc")...)); got != id {
		t.Errorf("berth --namespace k8s ps: %q, want %s", got, id)
	}
	for _, args := range [][]string{{"rm", "-f", "apart"}, {"stop", "apart"}, {"inspect", id[:12]}} {
		if _, stderr, _ := e.try(args...); !strings.Contains(stderr, "no such ") {
			t.Errorf("berth %s from the default namespace: %q", strings.Join(args, " "), stderr)
		}
	}
	if _, stderr, err := e.try("run", "--rm", "--name", "apart", demoImage, "true"); err == nil || !strings.Contains(stderr, `namespace "k8s"`) {
		t.Errorf("a name taken in another namespace: %v %q", err, stderr)
	}
	// Shared things are guarded across namespaces.
	if _, stderr, err := e.try("volume", "rm", "shared"); err == nil || !strings.Contains(stderr, "in use") {
		t.Errorf("volume rm of a volume a k8s container mounts: %v %q", err, stderr)
	}
	if _, stderr, err := e.try("rmi", demoImage); err == nil {
		t.Errorf("rmi of an image a k8s container uses: %q", stderr)
	}
	// Its monitor runs it as any other's: its exit handled and a restart
	// by its policy (the first run exits 3, the second stays), logs,
	// exec.
	waitFor(t, 30e9, "the restart by its policy", func() bool {
		return strings.TrimSpace(e.run(k8s("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "apart")...)) == "1 running"
	})
	waitFor(t, 10e9, "the k8s container's log", func() bool { out, _, _ := e.try(k8s("logs", "apart")...); return out == "hi\nhi\n" })
	if out := e.run(k8s("exec", "apart", "echo", "in")...); out != "in\n" {
		t.Errorf("exec: %q", out)
	}
	// Events too: each namespace sees its own containers'.
	until := time.Now().Add(time.Second).Format(time.RFC3339Nano)
	if out := e.run("events", "--since", "10m", "--until", until, "--filter", "type=container"); strings.Contains(out, id) {
		t.Errorf("berth events in the default namespace shows the k8s container's:\n%s", out)
	}
	if out := e.run(k8s("events", "--since", "10m", "--until", until, "--filter", "type=container")...); !strings.Contains(out, id) {
		t.Errorf("berth --namespace k8s events does not show its container's:\n%s", out)
	}
	e.run(k8s("rm", "-f", "apart")...)
	e.run(k8s("run", "--rm", demoImage, "true")...)
	if got := strings.TrimSpace(e.run(k8s("ps", "-aq")...)); got != "" {
		t.Errorf("left in k8s: %q", got)
	}
	if _, stderr, err := e.try("--namespace", "Not/Valid", "ps"); err == nil || !strings.Contains(stderr, "namespace") {
		t.Errorf("an invalid namespace: %v %q", err, stderr)
	}
	e.run("volume", "rm", "shared")
	e.checkNothingLeft()
}
