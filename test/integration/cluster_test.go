package integration

import (
	"archive/tar"
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/image/imagetest"
	"github.com/berth-dev/berth/internal/image/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestKubernetesCluster (make cluster-test; BERTH_CLUSTER_TEST=1): a
// single-node cluster — Debian's etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and the kubelet of
// tools/kubernetes — with berth serve as the node's runtime. kubectl
// creates a Deployment of 3, scales it to 5 and back to 3, rolls it out
// to another image (pulled by the kubelet through berth from a loopback
// registry), kubectl exec, logs -f and port-forward reach its pods, and a
// Job runs to completion. The pods are on the node's CNI configuration
// (serve --pod-network cni), which appears only after the node
// registered: the node is NotReady until then.
func TestKubernetesCluster(t *testing.T) {
	if os.Getenv("BERTH_CLUSTER_TEST") != "1" {
		t.Skip("the single-node cluster test runs under make cluster-test (BERTH_CLUSTER_TEST=1)")
	}
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("no etcd (apt-get install etcd-server; make cluster-test does)")
	}
	e := newEngine(t)
	k := newKubeRig(t, e)
	crictlPath(t)
	began := time.Now()
	elapsed := func() string { return fmt.Sprintf("%.1fs", time.Since(began).Seconds()) }

	// Two images of a web server on a loopback registry that berth's
	// registry configuration makes the mirror of berth.test, served in
	// the namespace by a second registry of the same storage on the same
	// address (the host's loopback is out of the namespace's reach).
	reg := registrytest.Start(t, registrytest.Options{})
	base := critestBase(t)
	for _, v := range []string{"1", "2"} {
		page := imagetest.NewLayer(t, imagetest.Gzip, []imagetest.Entry{
			{Name: "www/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "www/index.html", Mode: 0o644, Body: "web v" + v + "\n"},
		})
		imagetest.NewImage(t, "linux", "amd64", ocispec.ImageConfig{
			Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "VERSION=" + v},
			Cmd: []string{"sh", "-c", "trap 'exit 0' TERM; echo web v$VERSION starting; httpd -p 8080 -h /www; i=0; while :; do i=$((i+1)); echo tick $i; sleep 1 & wait; done"},
		}, base, page).Push(t, reg, "web", v)
	}
	regCfg, err := os.ReadFile(filepath.Join(reg.Dir, "config.yml"))
	if err != nil {
		t.Fatal(err)
	}
	nsRegCfg := filepath.Join(k.dir, "registry.yml")
	os.WriteFile(nsRegCfg, []byte(strings.Replace(string(regCfg), "127.0.0.1:0", reg.Addr, 1)), 0o600)
	k.start("registry", k.command(registrytest.DefaultBinary, "serve", nsRegCfg))
	waitFor(t, 30*time.Second, "the registry in the namespace", func() bool { return k.get("http://"+reg.Addr+"/v2/") != "" })
	mirrors := filepath.Join(k.dir, "registries.json")
	writeJSON(t, mirrors, map[string]any{"registries": map[string]any{"berth.test": map[string]any{"mirrors": []string{"http://" + reg.Addr}}}})
	e.env = append(e.env, "BERTH_REGISTRY_CONFIG="+mirrors)

	// The pod network is the node's CNI configuration, as a network
	// add-on writes it, after the kubelet has registered the node.
	sock := filepath.Join(k.dir, "cri.sock")
	netd := filepath.Join(k.dir, "net.d")
	os.MkdirAll(netd, 0o755)
	k.serve(sock, "--pod-network", "cni", "--cni-conf-dir", netd, "--cni-bin-dir", "/usr/lib/cni")

	// Credentials: one token of a system:masters user for every
	// component (anonymous access is off under AlwaysAllow), one RSA key
	// for service account tokens.
	var tb [16]byte
	rand.Read(tb[:])
	token := hex.EncodeToString(tb[:])
	tokens := filepath.Join(k.dir, "tokens.csv")
	os.WriteFile(tokens, []byte(token+",admin,admin,system:masters\n"), 0o600)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saKey := filepath.Join(k.dir, "sa.key")
	os.WriteFile(saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	kubeconfig := filepath.Join(k.dir, "kubeconfig")
	os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: berth
  cluster: {server: "https://%s:6443", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: berth
  context: {cluster: berth, user: admin}
current-context: berth
`, kubeNodeIP, token)), 0o600)

	k.start("etcd", k.command(etcd, "--name", "berth", "--data-dir", filepath.Join(k.dir, "etcd"),
		"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "berth=http://127.0.0.1:2380"))
	apiserver := k.start("kube-apiserver", k.command(filepath.Join(k.bin, "kube-apiserver"),
		"--etcd-servers", "http://127.0.0.1:2379", "--advertise-address", kubeNodeIP, "--secure-port", "6443",
		"--cert-dir", filepath.Join(k.dir, "apiserver"), "--token-auth-file", tokens, "--authorization-mode", "AlwaysAllow",
		"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-cluster-ip-range", "10.96.0.0/16",
		"--endpoint-reconciler-type", "none", "--kubelet-preferred-address-types", "InternalIP", "--allow-privileged"))
	api := k.httpClient()
	api.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // the apiserver's self-signed certificate
	waitFor(t, 120*time.Second, "the apiserver's /readyz", func() bool {
		if apiserver.exited() {
			t.Fatalf("kube-apiserver ended: %v", apiserver.err)
		}
		req, _ := http.NewRequest("GET", "https://"+kubeNodeIP+":6443/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := api.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	t.Logf("apiserver ready at %s", elapsed())
	k.start("kube-controller-manager", k.command(filepath.Join(k.bin, "kube-controller-manager"),
		"--kubeconfig", kubeconfig, "--service-account-private-key-file", saKey, "--leader-elect=false",
		"--bind-address", "127.0.0.1"))
	k.start("kube-scheduler", k.command(filepath.Join(k.bin, "kube-scheduler"),
		"--kubeconfig", kubeconfig, "--leader-elect=false", "--bind-address", "127.0.0.1"))
	kubelet := k.kubelet(sock, "", "--kubeconfig", kubeconfig)

	kubectl := func(args ...string) (string, error) {
		out, err := k.command(filepath.Join(k.bin, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	ok := func(args ...string) string {
		t.Helper()
		out, err := kubectl(args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return out
	}
	t.Cleanup(func() { k.teardownCluster(sock, kubelet, kubectl) })
	waitFor(t, 60*time.Second, "the kubelet to register its node", func() bool {
		_, err := kubectl("get", "node", "berth-node")
		return err == nil
	})
	// No CNI configuration yet: the runtime's network is not ready, so
	// neither is the node.
	readyCond := `{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].message}`
	waitFor(t, 60*time.Second, "the node NotReady for want of a network", func() bool {
		out, _ := kubectl("get", "node", "berth-node", "-o", "jsonpath="+readyCond)
		return strings.HasPrefix(out, "False") && strings.Contains(out, "cni plugin not initialized")
	})
	const podSubnet = "10.244.7.0/24"
	os.WriteFile(filepath.Join(netd, "10-addon.conflist"), []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"addon","plugins":[
 {"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":true,"hairpinMode":true,"ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}`, podSubnet, filepath.Join(k.dir, "ipam"))), 0o644)
	ok("wait", "--for=condition=Ready", "node/berth-node", "--timeout=120s")
	t.Logf("node ready at %s", elapsed())
	// The ServiceAccount admission refuses pods until the controller
	// manager has made the namespace's default account.
	waitFor(t, 60*time.Second, "the default service account", func() bool {
		_, err := kubectl("get", "serviceaccount", "default")
		return err == nil
	})

	apply := func(manifest string) {
		t.Helper()
		cmd := k.command(filepath.Join(k.bin, "kubectl"), "--kubeconfig", kubeconfig, "apply", "-f", "-")
		cmd.Stdin = strings.NewReader(manifest)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kubectl apply: %v: %s\n%s", err, out, manifest)
		}
	}
	apply(webDeployment)
	ok("rollout", "status", "deployment/web", "--timeout=180s")
	k.checkWebPods(kubectl, sock, 3, "1")
	t.Logf("deployment of 3 available at %s", elapsed())

	ok("scale", "deployment/web", "--replicas=5")
	ok("rollout", "status", "deployment/web", "--timeout=180s")
	k.checkWebPods(kubectl, sock, 5, "1")
	t.Logf("scaled to 5 at %s", elapsed())
	ok("scale", "deployment/web", "--replicas=3")
	k.checkWebPods(kubectl, sock, 3, "1")
	t.Logf("scaled back to 3 at %s", elapsed())

	ok("set", "image", "deployment/web", "web=berth.test/web:2")
	ok("rollout", "status", "deployment/web", "--timeout=180s")
	pods := k.checkWebPods(kubectl, sock, 3, "2")
	t.Logf("rolled out to web:2 at %s", elapsed())
	_, podNet, _ := net.ParseCIDR(podSubnet)
	for _, p := range pods {
		ip := ok("get", "pod", p, "-o", "jsonpath={.status.podIP}")
		if !podNet.Contains(net.ParseIP(ip)) {
			t.Errorf("pod %s's address %q is not of the CNI configuration's %s", p, ip, podSubnet)
		} else if got := k.get("http://" + net.JoinHostPort(ip, "8080") + "/index.html"); got != "web v2\n" {
			t.Errorf("pod %s at %s:8080 over the CNI bridge: %q", p, ip, got)
		}
	}

	// kubectl exec: the apiserver -> the kubelet -> serve's streaming
	// server.
	if out, err := kubectl("exec", pods[0], "--", "cat", "/www/index.html"); err != nil || out != "web v2" {
		t.Errorf("kubectl exec %s -- cat /www/index.html: %q %v", pods[0], out, err)
	}

	// kubectl logs -f follows: lines written after it began arrive.
	logs := k.command(filepath.Join(k.bin, "kubectl"), "--kubeconfig", kubeconfig, "logs", "-f", pods[1])
	k.followLogs(logs)
	t.Logf("exec and logs -f at %s", elapsed())

	port, err := k.portForward("kubectl port-forward", k.command(filepath.Join(k.bin, "kubectl"), "--kubeconfig", kubeconfig,
		"port-forward", "pod/"+pods[2], ":8080"))
	if err != nil {
		t.Error(err)
	} else if got := k.get("http://127.0.0.1:" + port + "/index.html"); got != "web v2\n" {
		t.Errorf("GET through kubectl port-forward: %q", got)
	}

	apply(onceJob)
	ok("wait", "--for=condition=complete", "job/once", "--timeout=120s")
	if out := ok("logs", "job/once"); out != "job done" {
		t.Errorf("kubectl logs job/once: %q", out)
	}
	t.Logf("job complete at %s", elapsed())

	// A RuntimeClass whose handler is berth's vm: the pod is one VM
	// holding its two containers (their kernel is the VM's, shared, not
	// the host's), with its service account token over the VM's share
	// and its readiness probe reaching it through the VM's network.
	if ok, why := e.vmAvailable(); !ok {
		t.Logf("no RuntimeClass vm pod: vm isolation %s", why)
		return
	}
	apply(vmPod)
	ok("wait", "--for=condition=Ready", "pod/vm", "--timeout=180s")
	host, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	web, err1 := kubectl("exec", "vm", "-c", "web", "--", "cat", "/proc/sys/kernel/random/boot_id")
	side, err2 := kubectl("exec", "vm", "-c", "side", "--", "cat", "/proc/sys/kernel/random/boot_id")
	if err1 != nil || err2 != nil || web == "" || web != side || web == strings.TrimSpace(string(host)) {
		t.Errorf("boot ids in the vm pod: web %q (%v), side %q (%v), host %q: want the pod's VM's, shared", web, err1, side, err2, host)
	}
	if out, err := kubectl("exec", "vm", "-c", "side", "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err != nil || out != "default" {
		t.Errorf("the service account's namespace file in the vm pod: %q %v", out, err)
	}
	ok("delete", "pod", "vm", "--timeout=120s")
	t.Logf("RuntimeClass vm pod ran and went at %s", elapsed())
}

const vmPod = `apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: vm
handler: vm
---
apiVersion: v1
kind: Pod
metadata:
  name: vm
spec:
  runtimeClassName: vm
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: berth.test/web:1
    readinessProbe:
      httpGet: {path: /index.html, port: 8080}
      periodSeconds: 1
  - name: side
    image: berth.test/web:1
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done"]
`

const webDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}
  template:
    metadata:
      labels: {app: web}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: berth.test/web:1
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet: {path: /index.html, port: 8080}
          periodSeconds: 1
`

const onceJob = `apiVersion: batch/v1
kind: Job
metadata:
  name: once
spec:
  backoffLimit: 0
  template:
    spec:
      automountServiceAccountToken: false
      restartPolicy: Never
      containers:
      - name: once
        image: berth.test/web:1
        command: ["sh", "-c", "sleep 1; echo job done"]
`

// checkWebPods waits until the Deployment's pods are exactly n, all
// running version v and ready, and berth's CRI has exactly n ready pods
// of it; it returns their names.
func (k *kubeRig) checkWebPods(kubectl func(...string) (string, error), sock string, n int, v string) []string {
	k.t.Helper()
	var names []string
	var last string
	deadline := time.Now().Add(120 * time.Second)
	for {
		names = nil
		good := 0
		out, err := kubectl("get", "pods", "-l", "app=web", "-o", "json")
		var list struct {
			Items []struct {
				Metadata struct {
					Name              string  `json:"name"`
					DeletionTimestamp *string `json:"deletionTimestamp"`
				} `json:"metadata"`
				Spec struct {
					Containers []struct {
						Image string `json:"image"`
					} `json:"containers"`
				} `json:"spec"`
				Status struct {
					ContainerStatuses []struct {
						Ready bool `json:"ready"`
					} `json:"containerStatuses"`
				} `json:"status"`
			} `json:"items"`
		}
		if err == nil && json.Unmarshal([]byte(out), &list) == nil {
			for _, p := range list.Items {
				names = append(names, p.Metadata.Name)
				if p.Metadata.DeletionTimestamp == nil && len(p.Spec.Containers) == 1 && p.Spec.Containers[0].Image == "berth.test/web:"+v &&
					len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready {
					good++
				}
			}
		}
		criOut, _ := k.crictl(sock, "pods", "--label", "app=web", "--state", "ready", "-q")
		criReady := len(strings.Fields(criOut))
		last = fmt.Sprintf("pods %v (%d good of version %s), CRI ready sandboxes %d", names, good, v, criReady)
		if len(names) == n && good == n && criReady == n {
			return names
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("waiting for %d ready pods of web:%s: %s", n, v, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// followLogs reads a `logs -f` command's output until two tick lines
// have arrived after it began, the second after the first.
func (k *kubeRig) followLogs(cmd *exec.Cmd) {
	k.t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		k.t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	type line struct {
		text string
		at   time.Time
	}
	lines := make(chan line, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- line{sc.Text(), time.Now()}
		}
		close(lines)
	}()
	began := time.Now()
	var seen []string
	lastTick := -1
	newTicks := 0
	timeout := time.After(30 * time.Second)
	for newTicks < 2 {
		select {
		case l, ok := <-lines:
			if !ok {
				k.t.Fatalf("kubectl logs -f ended: %q", seen)
			}
			seen = append(seen, l.text)
			if n, err := strconv.Atoi(strings.TrimPrefix(l.text, "tick ")); err == nil && strings.HasPrefix(l.text, "tick ") {
				if n <= lastTick {
					k.t.Fatalf("kubectl logs -f: tick %d after tick %d", n, lastTick)
				}
				lastTick = n
				if l.at.Sub(began) > 500*time.Millisecond {
					newTicks++ // written after logs -f began
				}
			}
		case <-timeout:
			k.t.Fatalf("kubectl logs -f: no new lines followed within 30 s: %q", seen)
		}
	}
	if !strings.HasPrefix(seen[0], "web v") {
		k.t.Errorf("kubectl logs -f began with %q, want the container's first line", seen[0])
	}
}

// teardownCluster deletes the workloads and waits for their pods to go
// (the kubelet stops and removes them), then stops the kubelet and removes
// what is left through the CRI and the engine.
func (k *kubeRig) teardownCluster(sock string, kubelet *kubeProc, kubectl func(...string) (string, error)) {
	kubectl("delete", "deployment/web", "job/once", "--ignore-not-found", "--wait=false")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && !kubelet.exited() {
		out, err := kubectl("get", "pods", "-o", "name")
		if err == nil && out == "" {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	kubelet.stop(k.t)
	if out, err := k.crictl(sock, "rmp", "-a", "-f"); err != nil {
		k.t.Errorf("crictl rmp -a -f: %v: %s", err, out)
	}
	k.resetEngine()
}
