package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/image/registrytest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// crictlPath is cri-tools' crictl, built by scripts/build-critools.sh
// (make test passes it as BERTH_CRICTL).
func crictlPath(t *testing.T) string {
	if p := os.Getenv("BERTH_CRICTL"); p != "" {
		return p
	}
	if p, err := exec.LookPath("crictl"); err == nil {
		return p
	}
	t.Skip("no crictl: run scripts/build-critools.sh and set BERTH_CRICTL to its bin/crictl (make test does)")
	return ""
}

// crictl runs crictl against sock, with an empty config (never the host's
// /etc/crictl.yaml).
func crictl(t *testing.T, sock string, args ...string) (string, string, error) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "crictl.yaml")
	os.WriteFile(cfg, nil, 0o644)
	all := append([]string{"--config", cfg, "--runtime-endpoint", "unix://" + sock, "--image-endpoint", "unix://" + sock, "--timeout", "60s"}, args...)
	cmd := exec.Command(crictlPath(t), all...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// crictlOK returns a crictl against sock that fails the test when the
// command fails, and otherwise returns its output, trimmed.
func crictlOK(t *testing.T, sock string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		out, errOut, err := crictl(t, sock, args...)
		if err != nil {
			t.Fatalf("crictl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return strings.TrimSpace(out)
	}
}

func criClient(t *testing.T, sock string) (runtimeapi.RuntimeServiceClient, runtimeapi.ImageServiceClient) {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
}

// TestCRIImages: the CRI's image service through crictl, on the image
// store the CLI uses, with a pull that needs the request's credentials.
func TestCRIImages(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	crictlPath(t)
	sock := e.serveAPI("--cri-socket").sock
	ok := func(args ...string) string {
		t.Helper()
		out, errOut, err := crictl(t, sock, args...)
		if err != nil {
			t.Fatalf("crictl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}

	if out := ok("version"); !strings.Contains(out, "RuntimeName:  berth") || !strings.Contains(out, "RuntimeApiVersion:  v1") {
		t.Errorf("crictl version:\n%s", out)
	}
	var info struct {
		Status struct {
			Conditions []struct {
				Type   string
				Status bool
			}
		}
		RuntimeHandlers []struct{ Name string } `json:"runtimeHandlers"`
	}
	if err := json.Unmarshal([]byte(ok("info", "-o", "json")), &info); err != nil {
		t.Fatal(err)
	}
	conds := map[string]bool{}
	for _, c := range info.Status.Conditions {
		conds[c.Type] = c.Status
	}
	if !conds["RuntimeReady"] || !conds["NetworkReady"] {
		t.Errorf("crictl info conditions: %+v", info.Status.Conditions)
	}
	handlers := map[string]bool{}
	for _, h := range info.RuntimeHandlers {
		handlers[h.Name] = true
	}
	if !handlers["runc"] {
		t.Errorf("crictl info: no runc handler in %+v", info.RuntimeHandlers)
	}

	// One store: what berth loaded, crictl lists, fully qualified.
	demoID := strings.TrimSpace(e.run("image", "inspect", "--format", "{{.Id}}", "berth-demo/busybox"))
	if out := ok("images", "--no-trunc", "-o", "json"); !strings.Contains(out, demoID) || !strings.Contains(out, "docker.io/berth-demo/busybox:latest") {
		t.Errorf("crictl images does not list the loaded demo image %s:\n%s", demoID, out)
	}

	// A pull that needs the request's credentials.
	reg := registrytest.Start(t, registrytest.Options{Auth: true, Users: map[string]string{"kube": "s3cret"}})
	img := featureImage(t)
	img.Push(t, reg, "feature", "v1")
	ref := reg.Ref("feature", "v1")
	if out, errOut, err := crictl(t, sock, "pull", ref); err == nil || !strings.Contains(errOut, "code = PermissionDenied") {
		t.Errorf("crictl pull without credentials: %v %q %q", err, out, errOut)
	}
	if out := ok("pull", "--creds", "kube:s3cret", ref); !strings.Contains(out, "Image is up to date for sha256:") {
		t.Errorf("crictl pull --creds: %q", out)
	}
	id := strings.TrimSpace(e.run("image", "inspect", "--format", "{{.Id}}", ref))
	if out := ok("images", "-q", "--no-trunc", ref); strings.TrimSpace(out) != id {
		t.Errorf("crictl images -q %s: %q, berth says %s", ref, out, id)
	}
	var st struct {
		Status struct {
			ID          string   `json:"id"`
			RepoTags    []string `json:"repoTags"`
			RepoDigests []string `json:"repoDigests"`
			Size        string   `json:"size"`
		}
		Info map[string]json.RawMessage
	}
	if err := json.Unmarshal([]byte(ok("inspecti", "-o", "json", ref)), &st); err != nil {
		t.Fatal(err)
	}
	if st.Status.ID != id || len(st.Status.RepoTags) != 1 || st.Status.RepoTags[0] != ref ||
		len(st.Status.RepoDigests) != 1 || !strings.HasPrefix(st.Status.RepoDigests[0], reg.Addr+"/feature@sha256:") ||
		st.Status.Size == "" || st.Status.Size == "0" {
		t.Errorf("crictl inspecti: %+v", st.Status)
	}
	if len(st.Info["imageSpec"]) == 0 {
		t.Errorf("crictl inspecti (verbose) has no imageSpec in its info: %v", st.Info)
	}
	// A second name for the same image shows in both listings.
	e.run("tag", ref, reg.Addr+"/feature:also")
	if out := ok("inspecti", "-o", "json", reg.Addr+"/feature:also"); !strings.Contains(out, reg.Addr+"/feature:v1") || !strings.Contains(out, reg.Addr+"/feature:also") {
		t.Errorf("crictl inspecti of a second tag lists not both tags:\n%s", out)
	}

	var fs struct {
		Status struct {
			ImageFilesystems []struct {
				FsID      struct{ Mountpoint string } `json:"fsId"`
				UsedBytes struct{ Value string }      `json:"usedBytes"`
			} `json:"imageFilesystems"`
		}
	}
	if err := json.Unmarshal([]byte(ok("imagefsinfo", "-o", "json")), &fs); err != nil {
		t.Fatal(err)
	}
	if f := fs.Status.ImageFilesystems; len(f) != 1 || f[0].FsID.Mountpoint != filepath.Join(e.root, "snapshots") ||
		f[0].UsedBytes.Value == "" || f[0].UsedBytes.Value == "0" {
		t.Errorf("crictl imagefsinfo: %+v", fs)
	}

	// By one tag removes every name, as the CRI says.
	ok("rmi", ref)
	if got := e.run("images", "-q", "--no-trunc"); strings.Contains(got, id) {
		t.Errorf("berth images after crictl rmi still lists %s:\n%s", id, got)
	}

	// What crictl cannot show: the codes, idempotence, no hang.
	rt, is := criClient(t, sock)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := is.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Errorf("RemoveImage of a removed image: %v (the CRI says it is no error)", err)
	}
	if r, err := is.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil || r.Image != nil {
		t.Errorf("ImageStatus of a removed image: %v %v", r, err)
	}
	if _, err := is.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "Not A Reference"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("PullImage of a malformed name: %v, want InvalidArgument", err)
	}
	if _, err := is.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: reg.Addr + "/no-such:v1"},
		Auth: &runtimeapi.AuthConfig{Username: "kube", Password: "s3cret"}}); status.Code(err) != codes.NotFound {
		t.Errorf("PullImage of a missing repository: %v, want NotFound", err)
	}
	if _, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("RunPodSandbox without metadata: %v, want InvalidArgument", err)
	}
	if r, err := rt.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{}); err != nil || r.GetLinux().GetCgroupDriver() != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("RuntimeConfig: %v %v", r, err)
	}
}
