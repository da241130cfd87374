package integration

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kubeletConfig is the KubeletConfiguration the tests run with: what
// works on this host (cgroupfs, no QoS cgroups, no swap check, no
// eviction, no local storage isolation) and a rig's access (anonymous,
// AlwaysAllow: a test rig, never a deployment). Crash-loop back-off is
// capped at 1 s so that restarts are seen in seconds.
func (k *kubeRig) kubeletConfig(sock string, static string) string {
	k.t.Helper()
	cfg := map[string]any{
		"apiVersion":                      "kubelet.config.k8s.io/v1beta1",
		"kind":                            "KubeletConfiguration",
		"containerRuntimeEndpoint":        "unix://" + sock,
		"imageServiceEndpoint":            "unix://" + sock,
		"cgroupDriver":                    "cgroupfs",
		"failSwapOn":                      false,
		"failCgroupV1":                    false, // the host is hybrid (v1 controllers)
		"cgroupsPerQOS":                   false,
		"enforceNodeAllocatable":          []string{},
		"evictionHard":                    map[string]string{},
		"localStorageCapacityIsolation":   false,
		"imageGCHighThresholdPercent":     100,
		"imageGCLowThresholdPercent":      99,
		"podLogsDir":                      filepath.Join(k.dir, "pod-logs"),
		"address":                         kubeNodeIP,
		"readOnlyPort":                    0,
		"resolvConf":                      "",
		"fileCheckFrequency":              "1s",
		"syncFrequency":                   "5s",
		"nodeStatusUpdateFrequency":       "2s",
		"crashLoopBackOff":                map[string]any{"maxContainerRestartPeriod": "1s"},
		"serializeImagePulls":             false,
		"authentication":                  map[string]any{"anonymous": map[string]any{"enabled": true}, "webhook": map[string]any{"enabled": false}},
		"authorization":                   map[string]any{"mode": "AlwaysAllow"},
		"shutdownGracePeriod":             "0s",
		"shutdownGracePeriodCriticalPods": "0s",
	}
	if static != "" {
		cfg["staticPodPath"] = static
	}
	path := filepath.Join(k.dir, "kubelet.json")
	writeJSON(k.t, path, cfg)
	return path
}

// kubelet starts the kubelet on sock (standalone without a kubeconfig)
// and waits for its health endpoint.
func (k *kubeRig) kubelet(sock, static string, args ...string) *kubeProc {
	k.t.Helper()
	rootDir := filepath.Join(k.dir, "kubelet")
	all := append([]string{"--config", k.kubeletConfig(sock, static), "--root-dir", rootDir,
		"--hostname-override", "berth-node", "--node-ip", kubeNodeIP, "--v", "2"}, args...)
	p := k.start("kubelet", k.command(filepath.Join(k.bin, "kubelet"), all...))
	k.t.Cleanup(func() {
		p.stop(k.t)
		k.kubeletGone(rootDir)
	})
	waitFor(k.t, 60*time.Second, "the kubelet's healthz", func() bool {
		if p.exited() {
			k.t.Fatalf("the kubelet ended: %v", p.err)
		}
		return k.get("http://127.0.0.1:10248/healthz") == "ok"
	})
	return p
}

// kubeletPod is what the kubelet's /pods says of a pod.
type kubeletPod struct {
	Metadata struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"metadata"`
	Status kubeletPodStatus `json:"status"`
}

type kubeletPodStatus struct {
	Phase             string                   `json:"phase"`
	PodIP             string                   `json:"podIP"`
	ContainerStatuses []kubeletContainerStatus `json:"containerStatuses"`
}

type kubeletContainerStatus struct {
	Name         string `json:"name"`
	Ready        bool   `json:"ready"`
	RestartCount int    `json:"restartCount"`
	ContainerID  string `json:"containerID"`
}

// kubeletPods is the kubelet's own view of its pods (its API on
// :10250, anonymous under AlwaysAllow).
func (k *kubeRig) kubeletPods() map[string]kubeletPod {
	k.t.Helper()
	c := k.httpClient()
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // the kubelet's self-signed serving certificate
	resp, err := c.Get("https://" + kubeNodeIP + ":10250/pods")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var list struct {
		Items []kubeletPod `json:"items"`
	}
	if json.NewDecoder(resp.Body).Decode(&list) != nil {
		return nil
	}
	out := map[string]kubeletPod{}
	for _, p := range list.Items {
		out[p.Metadata.Name] = p
	}
	return out
}

// criContainer is a container as `crictl ps -a -o json` lists it.
type criContainer struct {
	ID           string `json:"id"`
	PodSandboxID string `json:"podSandboxId"`
	Metadata     struct {
		Name    string `json:"name"`
		Attempt int    `json:"attempt"`
	} `json:"metadata"`
	State  string            `json:"state"`
	Labels map[string]string `json:"labels"`
}

func (k *kubeRig) criContainers(sock string) []criContainer {
	k.t.Helper()
	out, err := k.crictl(sock, "ps", "-a", "-o", "json")
	if err != nil {
		k.t.Fatalf("crictl ps -a: %v: %s", err, out)
	}
	var ps struct {
		Containers []criContainer `json:"containers"`
	}
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		k.t.Fatalf("crictl ps -a -o json: %v: %s", err, out)
	}
	return ps.Containers
}

// runningContainer is the running container of a pod (by the kubelet's
// pod name label) with that name, or nil.
func runningContainer(list []criContainer, pod, name string) *criContainer {
	for i, c := range list {
		if c.Labels["io.kubernetes.pod.name"] == pod && c.Metadata.Name == name && c.State == "CONTAINER_RUNNING" {
			return &list[i]
		}
	}
	return nil
}

// kubeletPodCIDR is the standalone kubelet's pod CIDR.
const kubeletPodCIDR = "10.133.12.0/24"

// webPod is the static pod of TestKubeletStandalone: a server and a
// client sharing an emptyDir volume and the pod's network (the client
// fetches from localhost and writes into the volume, which the server
// serves); the server's readiness is an HTTP probe of a file in the
// volume; "probed" has an exec liveness probe of a file the test removes;
// "exiter" exits twice, then stays.
const webPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
spec:
  terminationGracePeriodSeconds: 2
  volumes:
  - name: shared
    emptyDir: {}
  containers:
  - name: server
    image: berth-demo/busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "echo server starting; echo hello from server > /shared/index.html; echo ok > /shared/ready; exec httpd -f -p 8080 -h /shared"]
    ports:
    - containerPort: 8080
    volumeMounts:
    - {name: shared, mountPath: /shared}
    readinessProbe:
      httpGet: {path: /ready, port: 8080}
      periodSeconds: 1
      failureThreshold: 1
  - name: client
    image: berth-demo/busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; echo written by client > /shared/from-client; while :; do echo fetched: $(wget -q -O - http://localhost:8080/index.html); sleep 1 & wait; done"]
    volumeMounts:
    - {name: shared, mountPath: /shared}
  - name: probed
    image: berth-demo/busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; touch /tmp/alive; while :; do sleep 1 & wait; done"]
    livenessProbe:
      exec: {command: ["test", "-f", "/tmp/alive"]}
      periodSeconds: 1
      failureThreshold: 1
  - name: exiter
    image: berth-demo/busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; n=$(($(cat /shared/runs 2>/dev/null || echo 0) + 1)); echo $n > /shared/runs; echo run $n; [ $n -gt 2 ] || exit 3; while :; do sleep 1 & wait; done"]
    volumeMounts:
    - {name: shared, mountPath: /shared}
`

// laterPod is added after serve's restart: the kubelet still starts pods.
const laterPod = `apiVersion: v1
kind: Pod
metadata:
  name: later
  namespace: default
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: berth-demo/busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; echo later started; while :; do sleep 1 & wait; done"]
`

// TestKubeletStandalone: a real kubelet (tools/kubernetes), standalone
// with static pods, on berth serve's CRI: two containers sharing a volume
// and the pod's network, an HTTP readiness probe that follows a file, an
// exec liveness probe whose failure restarts its container, a container
// whose exits the kubelet restarts, crictl logs, exec and port-forward;
// then kill -9 of serve and a new serve: the kubelet goes on (it starts
// a new pod) and no container was restarted. The pods are on a CNI
// configuration serve renders from a template with the kubelet's pod
// CIDR (--cni-conf-template).
func TestKubeletStandalone(t *testing.T) {
	e := newEngine(t)
	k := newKubeRig(t, e)
	e.loadDemoImage()
	crictlPath(t)
	began := time.Now()
	sock := filepath.Join(k.dir, "cri.sock")
	// The pod network: the node's CNI configuration, made by serve from
	// a template and the pod CIDR the kubelet is given (standalone, its
	// podCIDR setting), which the kubelet passes on in
	// UpdateRuntimeConfig before it starts a pod.
	tmpl := filepath.Join(k.dir, "cni-template.conflist")
	os.WriteFile(tmpl, []byte(`{"cniVersion":"1.0.0","name":"kubelet-pods","plugins":[
 {"type":"bridge","bridge":"kcni0","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","dataDir":"`+filepath.Join(k.dir, "ipam")+`",
  "ranges":[{{range $i, $r := .PodCIDRRanges}}{{if $i}},{{end}}[{"subnet":"{{$r}}"}]{{end}}],
  "routes":[{{range $i, $r := .Routes}}{{if $i}},{{end}}{"dst":"{{$r}}"}{{end}}]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}`), 0o644)
	serveArgs := []string{"--pod-network", "cni", "--cni-conf-dir", filepath.Join(k.dir, "net.d"), "--cni-conf-template", tmpl}
	serve := k.serve(sock, serveArgs...)
	static := filepath.Join(k.dir, "manifests")
	os.MkdirAll(static, 0o755)
	if err := os.WriteFile(filepath.Join(static, "web.yaml"), []byte(webPod), 0o644); err != nil {
		t.Fatal(err)
	}
	kubelet := k.kubelet(sock, static, "--pod-cidr", kubeletPodCIDR)
	t.Cleanup(func() { k.teardownStatic(sock, static, kubelet) })
	t.Logf("kubelet healthy %.1fs after the test began", time.Since(began).Seconds())

	const pod = "web-berth-node" // a static pod's name carries the node's
	var list []criContainer
	waitFor(t, 90*time.Second, "the web pod's containers to run (exiter after two restarts)", func() bool {
		list = k.criContainers(sock)
		for _, n := range []string{"server", "client", "probed"} {
			if runningContainer(list, pod, n) == nil {
				return false
			}
		}
		ex := runningContainer(list, pod, "exiter")
		return ex != nil && ex.Metadata.Attempt == 2
	})
	t.Logf("web pod running %.1fs after the test began", time.Since(began).Seconds())
	ok := func(args ...string) string {
		t.Helper()
		out, err := k.crictl(sock, args...)
		if err != nil {
			t.Fatalf("crictl %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(out)
	}
	server := runningContainer(list, pod, "server")
	podID := server.PodSandboxID

	// The restarts of exiter, seen through crictl: attempts 0 and 1
	// exited with 3, attempt 2 runs, and its log says its run.
	exited := 0
	for _, c := range list {
		if c.Labels["io.kubernetes.pod.name"] == pod && c.Metadata.Name == "exiter" && c.State == "CONTAINER_EXITED" {
			exited++
			var insp struct {
				Status struct {
					ExitCode int `json:"exitCode"`
				} `json:"status"`
			}
			if err := json.Unmarshal([]byte(ok("inspect", c.ID)), &insp); err != nil || insp.Status.ExitCode != 3 {
				t.Errorf("exiter attempt %d: exit code %d (%v), want 3", c.Metadata.Attempt, insp.Status.ExitCode, err)
			}
		}
	}
	if exited < 1 || exited > 2 { // the kubelet may have collected the oldest
		t.Errorf("exiter's exited attempts listed: %d, want 1 or 2", exited)
	}
	// Running is not yet written: the logs and the files below are
	// waited for.
	exiter := runningContainer(list, pod, "exiter")
	waitFor(t, 20*time.Second, "crictl logs exiter to say \"run 3\"", func() bool { return ok("logs", exiter.ID) == "run 3" })

	// The volume and the pod's network: the client wrote into the
	// volume, and fetched from the server on localhost.
	waitFor(t, 20*time.Second, "the client's file in the volume, seen from the server", func() bool {
		out, err := k.crictl(sock, "exec", "-s", server.ID, "cat", "/shared/from-client")
		return err == nil && strings.TrimSpace(out) == "written by client"
	})
	client := runningContainer(list, pod, "client")
	waitFor(t, 20*time.Second, "the client's fetch through localhost in crictl logs", func() bool {
		return strings.Contains(ok("logs", client.ID), "fetched: hello from server")
	})
	if got := ok("logs", server.ID); !strings.Contains(got, "server starting") { // written before the client's fetch
		t.Errorf("crictl logs server: %q", got)
	}

	// Readiness follows /ready through the kubelet's HTTP probe of the
	// pod's address.
	ready := func(want bool) func() bool {
		return func() bool {
			for _, c := range k.kubeletPods()[pod].Status.ContainerStatuses {
				if c.Name == "server" {
					return c.Ready == want
				}
			}
			return false
		}
	}
	waitFor(t, 30*time.Second, "the server to be ready", ready(true))
	ok("exec", "-s", server.ID, "rm", "/shared/ready")
	waitFor(t, 30*time.Second, "the server to be unready without /ready", ready(false))
	ok("exec", "-s", server.ID, "sh", "-c", "echo ok > /shared/ready")
	waitFor(t, 30*time.Second, "the server to be ready again", ready(true))

	// Liveness: without /tmp/alive the probe fails and the kubelet
	// restarts the container (attempt 1, a new ID).
	probed := runningContainer(list, pod, "probed")
	ok("exec", "-s", probed.ID, "rm", "/tmp/alive")
	waitFor(t, 60*time.Second, "the kubelet to restart probed after its liveness probe failed", func() bool {
		c := runningContainer(k.criContainers(sock), pod, "probed")
		return c != nil && c.ID != probed.ID && c.Metadata.Attempt == 1
	})

	// crictl exec -it and port-forward go through serve's streaming
	// server (they fail, and say so, until berth serves streams).
	k.execInteractive(sock, server.ID)
	port, err := k.portForward("crictl port-forward", k.command(crictlPath(t), "--config", filepath.Join(k.dir, "crictl.yaml"),
		"--runtime-endpoint", "unix://"+sock, "port-forward", podID, "0:8080"))
	if err != nil {
		t.Error(err)
	} else if got := k.get("http://127.0.0.1:" + port + "/index.html"); got != "hello from server\n" {
		t.Errorf("GET through crictl port-forward: %q", got)
	}

	// kill -9 of serve under the running kubelet, then a new serve. First
	// the kubelet's status has caught up with the runtime: its container
	// IDs are the running ones.
	var before []criContainer
	var statusBefore kubeletPodStatus
	waitFor(t, 30*time.Second, "the kubelet's status to name the running containers", func() bool {
		before = k.criContainers(sock)
		statusBefore = k.kubeletPods()[pod].Status
		if len(statusBefore.ContainerStatuses) != 4 {
			return false
		}
		for _, c := range statusBefore.ContainerStatuses {
			r := runningContainer(before, pod, c.Name)
			if r == nil || !strings.HasSuffix(c.ContainerID, "://"+r.ID) {
				return false
			}
		}
		return true
	})
	serve.kill()
	podIP := statusBefore.PodIP
	if _, podNet, _ := net.ParseCIDR(kubeletPodCIDR); !podNet.Contains(net.ParseIP(podIP)) {
		t.Errorf("the pod's address %q is not of the kubelet's pod CIDR %s (the templated CNI configuration)", podIP, kubeletPodCIDR)
	}
	if got := k.get("http://" + podIP + ":8080/index.html"); got != "hello from server\n" {
		t.Errorf("the server (at %s) stopped answering when serve was killed: %q", podIP, got)
	}
	time.Sleep(3 * time.Second) // the kubelet's relists fail meanwhile
	k.serve(sock, serveArgs...)
	if err := os.WriteFile(filepath.Join(static, "later.yaml"), []byte(laterPod), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the kubelet to start a new pod on the new serve", func() bool {
		return runningContainer(k.criContainers(sock), "later-berth-node", "main") != nil
	})
	waitFor(t, 30*time.Second, "the server to be ready after serve's restart", ready(true))
	after := k.criContainers(sock)
	for _, b := range before {
		if b.Labels["io.kubernetes.pod.name"] != pod {
			continue
		}
		found := false
		for _, a := range after {
			if a.ID == b.ID {
				found = true
				if a.State != b.State {
					t.Errorf("container %s (%s attempt %d): %s before serve's restart, %s after", b.Metadata.Name, b.ID, b.Metadata.Attempt, b.State, a.State)
				}
			}
		}
		if !found && b.State == "CONTAINER_RUNNING" {
			t.Errorf("container %s (%s) is gone after serve's restart", b.Metadata.Name, b.ID)
		}
	}
	for _, a := range after {
		if a.Labels["io.kubernetes.pod.name"] != pod {
			continue
		}
		isNew := true
		for _, b := range before {
			if a.ID == b.ID {
				isNew = false
			}
		}
		if isNew {
			t.Errorf("a new container %s (attempt %d, %s) in the web pod after serve's restart", a.Metadata.Name, a.Metadata.Attempt, a.State)
		}
	}
	statusAfter := k.kubeletPods()[pod].Status
	counts := func(s []kubeletContainerStatus) string {
		var parts []string
		for _, c := range s {
			parts = append(parts, fmt.Sprintf("%s:%d:%s", c.Name, c.RestartCount, c.ContainerID))
		}
		return strings.Join(parts, " ")
	}
	if b, a := counts(statusBefore.ContainerStatuses), counts(statusAfter.ContainerStatuses); a != b || a == "" {
		t.Errorf("the kubelet's restart counts and container IDs changed across serve's restart:\nbefore %s\nafter  %s", b, a)
	}
	t.Logf("kubelet standalone checks done %.1fs after the test began", time.Since(began).Seconds())
}

// execInteractive runs `crictl exec -it` on a terminal: a shell in the
// container answers a command typed at it.
func (k *kubeRig) execInteractive(sock, id string) {
	k.t.Helper()
	m, s := openPty(k.t)
	defer m.Close()
	cmd := k.command(crictlPath(k.t), "--config", filepath.Join(k.dir, "crictl.yaml"), "--runtime-endpoint", "unix://"+sock,
		"exec", "-it", id, "sh")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	s.Close()
	out := &lockedBuffer{}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	m.Write([]byte("echo tty:$(tty) sum:$((40+2))\n"))
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "sum:42") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "sum:42") || !strings.Contains(out.String(), "tty:/dev/pts/") {
		cmd.Process.Kill()
		cmd.Wait()
		k.t.Errorf("crictl exec -it: the shell did not answer on a terminal: %q", visible(out.String()))
		return
	}
	m.Write([]byte("exit 7\n"))
	// crictl says the command's status and exits 1. What it wrote last
	// may still be in the terminal when it has exited: read to the end
	// (EIO once no one holds the terminal's other side).
	code := exitWithin(k.t, cmd, 20*time.Second, "crictl exec -it")
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
	}
	if code != 1 || !strings.Contains(out.String(), "command terminated with exit code 7") {
		k.t.Errorf("crictl exec -it: exit code %d, want 1 saying the shell's 7; output %q", code, visible(out.String()))
	}
}

// teardownStatic removes the static pods and waits for the kubelet to
// stop their containers, stops the kubelet, then removes the pods through
// the CRI and resets the engine from inside the namespace.
func (k *kubeRig) teardownStatic(sock, static string, kubelet *kubeProc) {
	os.RemoveAll(static)
	os.MkdirAll(static, 0o755)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && !kubelet.exited() {
		out, err := k.crictl(sock, "ps", "-q")
		if err == nil && strings.TrimSpace(out) == "" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	kubelet.stop(k.t)
	if out, err := k.crictl(sock, "rmp", "-a", "-f"); err != nil {
		k.t.Errorf("crictl rmp -a -f: %v: %s", err, out)
	}
	k.resetEngine()
}
