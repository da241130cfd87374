package integration

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCRIPods: a pod and a container through crictl on berth serve's CRI
// socket: the pod's hostname, its hostPort through the portmap plugin,
// exec, logs in the CRI format at the kubelet's path; the objects live in
// the k8s store namespace (berth --namespace k8s ps, not berth ps); a
// kill -9 of serve leaves the container running and the restarted server
// reports the same pod and container; stop and removal leave nothing.
func TestCRIPods(t *testing.T) {
	requireCNI(t)
	e := newEngine(t)
	e.loadDemoImage()
	crictlPath(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	sock := filepath.Join(t.TempDir(), "cri.sock")
	first := e.serveToKill(sock, nil, "--cri-socket", sock)
	ok := crictlOK(t, sock)

	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	os.MkdirAll(logDir, 0o755)
	podCfg := filepath.Join(dir, "pod.json")
	writeJSON(t, podCfg, map[string]any{
		"metadata": map[string]any{"name": "web", "namespace": "default", "uid": "uid-web-1", "attempt": 0},
		"hostname": "webpod", "log_directory": logDir,
		"port_mappings": []any{map[string]any{"container_port": 8080, "host_port": port, "protocol": 0}},
		"linux":         map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"pid": 1}}},
	})
	ctrCfg := filepath.Join(dir, "ctr.json")
	writeJSON(t, ctrCfg, map[string]any{
		"metadata": map[string]any{"name": "srv"},
		"image":    map[string]any{"image": "docker.io/" + demoImage},
		"command":  []string{"sh", "-c", "echo started; mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 8080 -h /www"},
		"log_path": "srv/0.log",
	})
	// The events the kubelet's evented PLEG reads, from before the pod.
	rt, _ := criClient(t, sock)
	evCtx, evCancel := context.WithCancel(context.Background())
	defer evCancel()
	evStream, err := rt.GetContainerEvents(evCtx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	evs := make(chan *runtimeapi.ContainerEventResponse, 16)
	go func() {
		for {
			ev, err := evStream.Recv()
			if err != nil {
				close(evs)
				return
			}
			evs <- ev
		}
	}()
	time.Sleep(200 * time.Millisecond) // the stream is following the journal

	podID := ok("runp", podCfg)
	cid := ok("create", podID, ctrCfg, podCfg)
	ok("start", cid)
	if got := ok("exec", "-s", cid, "hostname"); got != "webpod" {
		t.Errorf("the pod's hostname inside: %q", got)
	}
	for _, want := range []runtimeapi.ContainerEventType{runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT} {
		select {
		case ev := <-evs:
			if ev.GetContainerId() != cid || ev.GetContainerEventType() != want || ev.GetPodSandboxStatus().GetId() != podID {
				t.Errorf("container event: %v for %s (pod %s), want %v for %s in %s", ev.GetContainerEventType(), ev.GetContainerId(), ev.GetPodSandboxStatus().GetId(), want, cid, podID)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("no %v event", want)
		}
	}
	waitFor(t, 10*time.Second, "the pod's hostPort", func() bool { return httpGet(port) == "served\n" })
	waitFor(t, 10*time.Second, "the container's log", func() bool { return strings.Contains(ok("logs", cid), "started") })
	if data, err := os.ReadFile(filepath.Join(logDir, "srv", "0.log")); err != nil || !strings.Contains(string(data), " stdout F started") {
		t.Errorf("the CRI log at the kubelet's path: %q %v", data, err)
	}
	if got := strings.TrimSpace(e.run("--namespace", "k8s", "ps", "-q", "--no-trunc")); got != cid {
		t.Errorf("berth --namespace k8s ps: %q, want %s", got, cid)
	}
	if got := strings.TrimSpace(e.run("ps", "-aq")); got != "" {
		t.Errorf("berth ps lists the CRI's container: %q", got)
	}

	// kill -9 of serve: the container runs on, and a new server reports it.
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	if httpGet(port) != "served\n" {
		t.Errorf("the pod's web server stopped answering when serve was killed")
	}
	e.serveWith("--cri-socket", sock)
	var ps struct {
		Containers []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"containers"`
	}
	if err := json.Unmarshal([]byte(ok("ps", "-o", "json")), &ps); err != nil || len(ps.Containers) != 1 || ps.Containers[0].ID != cid || ps.Containers[0].State != "CONTAINER_RUNNING" {
		t.Errorf("crictl ps after serve's restart: %+v %v", ps, err)
	}
	if got := ok("pods", "-q", "--no-trunc"); got != podID {
		t.Errorf("crictl pods after serve's restart: %q, want %s", got, podID)
	}

	ok("stop", "-t", "1", cid)
	var insp struct {
		Status struct {
			State    string `json:"state"`
			ExitCode int    `json:"exitCode"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(ok("inspect", cid)), &insp); err != nil || insp.Status.State != "CONTAINER_EXITED" {
		t.Errorf("crictl inspect after stop: %+v %v", insp, err)
	}
	ok("stopp", podID)
	ok("rmp", podID)
	if got := ok("pods", "-q"); got != "" {
		t.Errorf("pods left: %q", got)
	}
	if got := strings.TrimSpace(e.run("--namespace", "k8s", "ps", "-aq")); got != "" {
		t.Errorf("containers left in k8s: %q", got)
	}
	e.checkNothingLeft()
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// serveToKill starts `berth serve` with args (naming the CRI socket sock)
// and extra environment, outside serveWith's stop at the test's end: for
// a test that kills it (-9) and starts another. It waits for the socket.
func (e *engineEnv) serveToKill(sock string, env []string, args ...string) *exec.Cmd {
	e.t.Helper()
	cmd := e.command(append([]string{"serve"}, args...)...)
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(e.t, 10*time.Second, "the CRI socket", func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return cmd
}
