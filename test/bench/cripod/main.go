// Command cripod times a pod start as the kubelet makes it: RunPodSandbox,
// CreateContainer and StartContainer over one gRPC connection kept open
// (crictl, which scripts/bench-cri.sh also times, is a new process and a
// new connection for each call, ~20 ms of each here). It alternates
// between the runtimes named, so all see the same machine noise (each
// round in another order, each start after a pause: a runtime's teardown
// that goes on in the background must not fall on another's start),
// stops and removes each pod untimed, and prints each one's median with its
// spread and the ratio of each to the last (the reference).
//
//	cripod -n 21 -image IMAGE -logdir DIR NAME=unix:///PATH [NAME=...]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type target struct {
	name string
	rt   cri.RuntimeServiceClient
	conn *grpc.ClientConn
}

func main() {
	n := flag.Int("n", 21, "pod starts per runtime")
	settle := flag.Duration("settle", 200*time.Millisecond, "the pause before each pod start")
	image := flag.String("image", "", "the container's image (present in every runtime)")
	logDir := flag.String("logdir", "", "a directory for the pods' logs")
	flag.Parse()
	if *image == "" || *logDir == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: cripod -image IMAGE -logdir DIR NAME=unix:///PATH ... (each against the last)")
		os.Exit(2)
	}
	var targets []*target
	for _, arg := range flag.Args() {
		name, endpoint, ok := strings.Cut(arg, "=")
		if !ok {
			fail(fmt.Errorf("%q: want NAME=unix:///PATH", arg))
		}
		conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fail(err)
		}
		targets = append(targets, &target{name: name, rt: cri.NewRuntimeServiceClient(conn), conn: conn})
	}
	ctx := context.Background()
	times := map[string][]time.Duration{}
	// Each call's own time too, to show where a start goes.
	calls := map[string]*[3][]time.Duration{}
	for i := -1; i < *n; i++ { // one untimed warm-up each
		// Each round in another order, and a pause after each pod's
		// removal: a runtime's teardown that goes on in the background
		// (a shim's exit, a snapshot's removal) falls on no one's start.
		for k := range targets {
			ti := (k + i + 1) % len(targets)
			t := targets[ti]
			time.Sleep(*settle)
			// Pod names are the runtime's names: no spaces.
			d, err := podStart(ctx, t, *image, *logDir, fmt.Sprintf("cripod-%d-%d-%d", ti, os.Getpid(), i+1))
			if err != nil {
				fail(fmt.Errorf("%s: %w", t.name, err))
			}
			if i >= 0 {
				times[t.name] = append(times[t.name], d[0]+d[1]+d[2])
				if calls[t.name] == nil {
					calls[t.name] = new([3][]time.Duration)
				}
				for k := range d {
					calls[t.name][k] = append(calls[t.name][k], d[k])
				}
			}
		}
	}
	fmt.Printf("CRI pod start (RunPodSandbox + CreateContainer + StartContainer over one gRPC connection, as the kubelet), median of %d, interleaved:\n", *n)
	for _, t := range targets {
		s := slices.Clone(times[t.name])
		slices.Sort(s)
		fmt.Printf("  %-32s %8.1f ms  (quartiles %.1f-%.1f, min %.1f, max %.1f)\n", t.name, ms(s[len(s)/2]), ms(s[len(s)/4]), ms(s[3*len(s)/4]), ms(s[0]), ms(s[len(s)-1]))
		c := calls[t.name]
		fmt.Printf("  %-32s %8s    RunPodSandbox %.1f, CreateContainer %.1f, StartContainer %.1f (medians)\n", "", "", ms(median(c[0])), ms(median(c[1])), ms(median(c[2])))
	}
	// Each against the last, the reference.
	ref := targets[len(targets)-1]
	for _, t := range targets[:len(targets)-1] {
		fmt.Printf("  %s/%s: %.2fx\n", t.name, ref.name, float64(median(times[t.name]))/float64(median(times[ref.name])))
	}
}

// podStart times one pod start, each call apart, and removes the pod
// afterwards.
func podStart(ctx context.Context, t *target, image, logDir, name string) (d [3]time.Duration, err error) {
	dir := logDir + "/" + name
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return d, err
	}
	// The kubelet's usual shapes, as scripts/bench-cri.sh gives crictl.
	podCfg := &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: "uid-" + name},
		LogDirectory: dir,
		Linux: &cri.LinuxPodSandboxConfig{SecurityContext: &cri.LinuxSandboxSecurityContext{
			NamespaceOptions: &cri.NamespaceOption{Pid: cri.NamespaceMode_CONTAINER}}},
	}
	ctrCfg := &cri.ContainerConfig{
		Metadata: &cri.ContainerMetadata{Name: "sleeper"},
		Image:    &cri.ImageSpec{Image: image},
		Command:  []string{"sleep", "3600"},
		LogPath:  "sleeper.log",
		Linux: &cri.LinuxContainerConfig{SecurityContext: &cri.LinuxContainerSecurityContext{
			NamespaceOptions: &cri.NamespaceOption{Pid: cri.NamespaceMode_CONTAINER}}},
	}
	start := time.Now()
	pod, err := t.rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: podCfg})
	if err != nil {
		return d, fmt.Errorf("RunPodSandbox: %w", err)
	}
	d[0] = time.Since(start)
	defer func() {
		t.rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId})
		t.rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId})
	}()
	start = time.Now()
	ctr, err := t.rt.CreateContainer(ctx, &cri.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: ctrCfg, SandboxConfig: podCfg})
	if err != nil {
		return d, fmt.Errorf("CreateContainer: %w", err)
	}
	d[1] = time.Since(start)
	start = time.Now()
	if _, err := t.rt.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
		return d, fmt.Errorf("StartContainer: %w", err)
	}
	d[2] = time.Since(start)
	return d, nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cripod:", err)
	os.Exit(1)
}
