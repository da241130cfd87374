//go:build linux

package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/engine/spec"
	"github.com/berth-dev/berth/internal/engine/store"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Containers are the engine's containers in the CRI namespace, each in
// its pod (engine.CreateOptions.Pod). As for pods, the CRI's metadata,
// labels and annotations live in one label of the container (metaLabel);
// the container's other labels include its image's, which the CRI does
// not answer.

// containerMeta is what a container's metaLabel holds.
type containerMeta struct {
	Metadata    *runtimeapi.ContainerMetadata `json:"metadata"`
	Labels      map[string]string             `json:"labels,omitempty"`
	Annotations map[string]string             `json:"annotations,omitempty"`
	// Image is the image as the kubelet named it.
	Image   string `json:"image"`
	LogPath string `json:"logPath,omitempty"`
	// StdinOnce: the end of the first attach's stdin closes the
	// container's (streaming.go).
	StdinOnce bool `json:"stdinOnce,omitempty"`
}

func containerMetaOf(c *engine.Container) (*containerMeta, bool) {
	v, ok := c.Config.Labels[metaLabel]
	if !ok {
		return nil, false
	}
	var m containerMeta
	if json.Unmarshal([]byte(v), &m) != nil || m.Metadata == nil {
		return nil, false
	}
	return &m, true
}

// CreateContainer makes a container in a ready pod from the kubelet's
// config: its command, environment, mounts, devices, security context,
// resources and its log in the CRI format at the kubelet's path.
func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	cfg := req.GetConfig()
	md := cfg.GetMetadata()
	if md == nil || md.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "CreateContainer: the container config's metadata needs a name")
	}
	if cfg.GetImage().GetImage() == "" {
		return nil, status.Error(codes.InvalidArgument, "CreateContainer: the container config names no image")
	}
	p, err := s.sandbox(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, grpcError(err)
	}
	pmeta, ok := sandboxMetaOf(p)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "pod %s was not made through the CRI", p.Name)
	}
	o, err := s.createOptions(p, pmeta, cfg)
	if err != nil {
		return nil, grpcError(err)
	}
	c, err := s.e.Create(ctx, o)
	if err != nil {
		if errors.Is(err, store.ErrNameInUse) {
			return nil, status.Errorf(codes.AlreadyExists, "CreateContainer: the container name %q is reserved: %v", o.Name, err)
		}
		return nil, grpcError(err)
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: c.ID}, nil
}

// createOptions maps a CRI container config onto the engine's options.
func (s *Server) createOptions(p *engine.Pod, pmeta *sandboxMeta, cfg *runtimeapi.ContainerConfig) (engine.CreateOptions, error) {
	md := cfg.GetMetadata()
	pmd := pmeta.Metadata
	meta := containerMeta{Metadata: md, Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), Image: cfg.GetImage().GetImage(),
		StdinOnce: cfg.GetStdin() && cfg.GetStdinOnce()}
	o := engine.CreateOptions{
		Name:  strings.Join([]string{md.GetName(), pmd.GetName(), pmd.GetNamespace(), pmd.GetUid(), strconv.FormatUint(uint64(md.GetAttempt()), 10)}, "_"),
		Image: cfg.GetImage().GetImage(), Pod: p.ID,
		Cmd: cfg.GetArgs(), WorkingDir: cfg.GetWorkingDir(),
		Tty: cfg.GetTty(), OpenStdin: cfg.GetStdin(),
		Annotations:   cfg.GetAnnotations(),
		NoHealthcheck: true, // the kubelet probes; an image's HEALTHCHECK is docker's
	}
	if cmd := cfg.GetCommand(); len(cmd) > 0 {
		ep := append([]string(nil), cmd...)
		o.Entrypoint = &ep
	}
	for _, kv := range cfg.GetEnvs() {
		o.Env = append(o.Env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	if dir, rel := pmeta.LogDirectory, cfg.GetLogPath(); dir != "" && rel != "" {
		meta.LogPath = filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(meta.LogPath), 0o755); err != nil {
			return o, fmt.Errorf("the container's log directory: %w", err)
		}
		o.LogDriver, o.LogPath = engine.LogK8sFile, meta.LogPath
	} else {
		o.LogDriver = engine.LogNone
	}
	for _, m := range cfg.GetMounts() {
		if img := m.GetImage().GetImage(); img != "" && m.GetHostPath() == "" {
			// An image volume: read-only always (the kubelet's rule).
			if !m.GetReadonly() {
				return o, fmt.Errorf("image volume %s at %s: an image volume is read-only: %w", img, m.GetContainerPath(), engine.ErrInvalid)
			}
			o.ImageMounts = append(o.ImageMounts, engine.ImageMount{Image: img, Destination: m.GetContainerPath(), Subpath: m.GetImageSubPath()})
			continue
		}
		if m.GetContainerPath() == "" || m.GetHostPath() == "" {
			return o, fmt.Errorf("a mount needs a host path and a container path (got %q -> %q): %w", m.GetHostPath(), m.GetContainerPath(), engine.ErrInvalid)
		}
		if strings.Contains(m.GetHostPath(), ":") || strings.Contains(m.GetContainerPath(), ":") {
			return o, fmt.Errorf("mount %s -> %s: berth cannot mount a path with a colon yet: %w", m.GetHostPath(), m.GetContainerPath(), engine.ErrInvalid)
		}
		if m.GetSelinuxRelabel() && selinuxEnabled() {
			// Without SELinux there is nothing to relabel (containerd
			// ignores it too); with it, berth cannot yet.
			return o, fmt.Errorf("mount %s: berth cannot relabel for SELinux yet: %w", m.GetHostPath(), engine.ErrInvalid)
		}
		opts := []string{"rw"}
		if m.GetReadonly() {
			opts[0] = "ro"
		}
		switch m.GetPropagation() {
		case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			opts = append(opts, "rslave")
		case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			opts = append(opts, "rshared")
		}
		o.Binds = append(o.Binds, m.GetHostPath()+":"+m.GetContainerPath()+":"+strings.Join(opts, ","))
		if m.GetRecursiveReadOnly() {
			if !m.GetReadonly() {
				return o, fmt.Errorf("mount %s: recursive read-only needs read-only: %w", m.GetContainerPath(), engine.ErrInvalid)
			}
			if m.GetPropagation() != runtimeapi.MountPropagation_PROPAGATION_PRIVATE {
				return o, fmt.Errorf("mount %s: recursive read-only needs private propagation (not %s): %w", m.GetContainerPath(), m.GetPropagation(), engine.ErrInvalid)
			}
			if o.MountExtras == nil {
				o.MountExtras = map[string]engine.MountExtra{}
			}
			o.MountExtras[filepath.Clean(m.GetContainerPath())] = engine.MountExtra{ReadOnlyRecursive: true}
		}
	}
	for _, d := range cfg.GetDevices() {
		dev := d.GetHostPath() + ":" + d.GetContainerPath()
		if perms := d.GetPermissions(); perms != "" {
			dev += ":" + perms
		}
		o.Devices = append(o.Devices, dev)
	}
	lin := cfg.GetLinux()
	if r := lin.GetResources(); r != nil {
		o.Resources = spec.Resources{CPUShares: r.GetCpuShares(), CPUPeriod: r.GetCpuPeriod(), CPUQuota: r.GetCpuQuota(),
			CpusetCpus: r.GetCpusetCpus(), CpusetMems: r.GetCpusetMems()}
		if r.GetCpuQuota() == 0 {
			o.Resources.CPUPeriod = 0 // a period alone is no limit
		}
		o.Memory = r.GetMemoryLimitInBytes()
		if sw := r.GetMemorySwapLimitInBytes(); sw != 0 && o.Memory > 0 {
			o.Resources.MemorySwap = sw
		}
		if adj := int(r.GetOomScoreAdj()); adj != 0 {
			o.OOMScoreAdj = &adj
		}
	}
	sc := lin.GetSecurityContext()
	if sc == nil {
		o.SecurityOpt = append(o.SecurityOpt, "seccomp=unconfined") // see below
	}
	if sc != nil {
		o.Privileged = sc.GetPrivileged()
		o.ReadOnly = sc.GetReadonlyRootfs()
		o.CapAdd = capNames(sc.GetCapabilities().GetAddCapabilities())
		o.CapDrop = capNames(sc.GetCapabilities().GetDropCapabilities())
		switch {
		case sc.GetRunAsUsername() != "":
			o.User = sc.GetRunAsUsername()
		case sc.GetRunAsUser() != nil:
			o.User = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10)
		}
		if g := sc.GetRunAsGroup(); g != nil {
			if o.User == "" {
				return o, fmt.Errorf("run_as_group without run_as_user or run_as_username: %w", engine.ErrInvalid)
			}
			o.User += ":" + strconv.FormatInt(g.GetValue(), 10)
		}
		for _, g := range sc.GetSupplementalGroups() {
			o.GroupAdd = append(o.GroupAdd, strconv.FormatInt(g, 10))
		}
		o.StrictGroups = sc.GetSupplementalGroupsPolicy() == runtimeapi.SupplementalGroupsPolicy_Strict
		if sc.GetNoNewPrivs() {
			o.SecurityOpt = append(o.SecurityOpt, "no-new-privileges")
		}
		switch prof := sc.GetSeccomp(); {
		case prof == nil, prof.GetProfileType() == runtimeapi.SecurityProfile_Unconfined:
			// No profile asked for is none (containerd's rule; the
			// kubelet asks for RuntimeDefault when the pod does).
			o.SecurityOpt = append(o.SecurityOpt, "seccomp=unconfined")
		case prof.GetProfileType() == runtimeapi.SecurityProfile_Localhost:
			o.SecurityOpt = append(o.SecurityOpt, "seccomp="+prof.GetLocalhostRef())
		}

		if prof := sc.GetApparmor(); prof != nil && prof.GetProfileType() == runtimeapi.SecurityProfile_Localhost {
			return o, fmt.Errorf("AppArmor profile %q: this host has no AppArmor: %w", prof.GetLocalhostRef(), engine.ErrInvalid)
		}
		if sel := sc.GetSelinuxOptions(); sel != nil && (sel.GetUser() != "" || sel.GetRole() != "" || sel.GetType() != "" || sel.GetLevel() != "") {
			return o, fmt.Errorf("SELinux options: this host has no SELinux: %w", engine.ErrInvalid)
		}
		switch ns := sc.GetNamespaceOptions(); ns.GetPid() {
		case runtimeapi.NamespaceMode_NODE:
			o.PidMode = "host"
		case runtimeapi.NamespaceMode_TARGET:
			o.PidMode = "container:" + ns.GetTargetId()
		case runtimeapi.NamespaceMode_CONTAINER:
			if p.SharePID {
				return o, fmt.Errorf("a container of its own PID namespace in a pod that shares one: %w", engine.ErrInvalid)
			}
		}
	}
	// The lists are the kubelet's (its defaults, or none for procMount
	// Unmasked), as containerd takes them; an unprivileged container
	// without them keeps the engine's (docker's) defaults.
	if sc != nil && !sc.GetPrivileged() {
		if mp := sc.GetMaskedPaths(); len(mp) > 0 {
			o.MaskedPaths = mp
		}
		if rp := sc.GetReadonlyPaths(); len(rp) > 0 {
			o.ReadonlyPaths = rp
		}
	}
	o.Sysctls = maps.Clone(pmeta.Sysctls)
	labels := maps.Clone(cfg.GetLabels())
	if labels == nil {
		labels = map[string]string{}
	}
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return o, err
	}
	labels[metaLabel] = string(metaJSON)
	o.Labels = labels
	return o, nil
}

// selinuxEnabled says whether the host runs SELinux (its filesystem is
// mounted).
func selinuxEnabled() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}

// capNames are the kubelet's capability names as the engine takes them
// (CAP_ prefixed, "ALL" as it is).
func capNames(in []string) []string {
	var out []string
	for _, c := range in {
		c = strings.ToUpper(c)
		if c != "ALL" && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		out = append(out, c)
	}
	return out
}

// container finds a CRI container by ID or unique ID prefix.
func (s *Server) container(ctx context.Context, id string) (*engine.Container, *containerMeta, error) {
	if id == "" {
		return nil, nil, status.Error(codes.InvalidArgument, "no container ID given")
	}
	c, err := s.e.Get(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	m, ok := containerMetaOf(c)
	if !ok {
		return nil, nil, status.Errorf(codes.NotFound, "container %s was not made through the CRI", c.Name)
	}
	return c, m, nil
}

// StartContainer starts a created container under its monitor; the
// container never depends on this server after that.
func (s *Server) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	c, _, err := s.container(ctx, req.GetContainerId())
	if err != nil {
		return nil, grpcError(err)
	}
	if c.State.Status != engine.StatusCreated {
		return nil, status.Errorf(codes.FailedPrecondition, "container %s is %s: only a created container can be started", c.ID, c.State.Status)
	}
	if _, err := s.e.Start(ctx, c.ID, nil); err != nil {
		return nil, grpcError(err)
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

// StopContainer stops a container: its stop signal, then SIGKILL after
// the timeout. A container that does not run, or is gone, is no error.
func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	c, _, err := s.container(ctx, req.GetContainerId())
	if errors.Is(err, store.ErrNotFound) {
		return &runtimeapi.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, grpcError(err)
	}
	timeout := int(req.GetTimeout())
	if err := s.e.Stop(ctx, c.ID, &timeout); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, grpcError(err)
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// RemoveContainer removes a container (killing it if it runs); one that
// is gone is no error.
func (s *Server) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	c, _, err := s.container(ctx, req.GetContainerId())
	if errors.Is(err, store.ErrNotFound) {
		return &runtimeapi.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, grpcError(err)
	}
	if err := s.e.Remove(ctx, c.ID, engine.RemoveOptions{Force: true}); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, grpcError(err)
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func containerState(c *engine.Container) runtimeapi.ContainerState {
	switch c.State.Status {
	case engine.StatusCreated:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case engine.StatusRunning, engine.StatusPaused, engine.StatusRestarting:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case engine.StatusExited, engine.StatusDead:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

// imageRef is the image a container runs by its ID.
func imageRef(c *engine.Container) string { return c.Image }

// containerFilter is what the CRI's listings filter containers by: an
// ID or its prefix, a pod's ID or its prefix, a state (nil: any) and
// labels.
type containerFilter struct {
	id, pod string
	state   *runtimeapi.ContainerState
	labels  map[string]string
}

// criContainer is a CRI container with its metadata.
type criContainer struct {
	c *engine.Container
	m *containerMeta
}

// criContainers are the CRI's containers that f keeps.
func (s *Server) criContainers(ctx context.Context, f containerFilter) ([]criContainer, error) {
	list, err := s.e.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []criContainer
	for _, c := range list {
		m, ok := containerMetaOf(c)
		if !ok {
			continue
		}
		switch {
		case f.id != "" && !strings.HasPrefix(c.ID, f.id),
			f.pod != "" && !strings.HasPrefix(c.Pod, f.pod),
			f.state != nil && *f.state != containerState(c),
			!matchLabels(m.Labels, f.labels):
			continue
		}
		out = append(out, criContainer{c, m})
	}
	return out, nil
}

// ListContainers lists the CRI's containers, filtered by ID (or a
// prefix), state, pod and labels.
func (s *Server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f := req.GetFilter()
	var state *runtimeapi.ContainerState
	if f.GetState() != nil {
		st := f.GetState().GetState()
		state = &st
	}
	list, err := s.criContainers(ctx, containerFilter{id: f.GetId(), pod: f.GetPodSandboxId(), state: state, labels: f.GetLabelSelector()})
	if err != nil {
		return nil, grpcError(err)
	}
	out := []*runtimeapi.Container{}
	for _, x := range list {
		c, m := x.c, x.m
		out = append(out, &runtimeapi.Container{Id: c.ID, PodSandboxId: c.Pod, Metadata: m.Metadata,
			Image: &runtimeapi.ImageSpec{Image: m.Image}, ImageRef: imageRef(c), ImageId: imageRef(c), State: containerState(c),
			CreatedAt: c.Created.UnixNano(), Labels: m.Labels, Annotations: m.Annotations})
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

// ContainerStatus describes a container: state, times, exit code and
// reason, image, mounts, log path.
func (s *Server) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	c, m, err := s.container(ctx, req.GetContainerId())
	if err != nil {
		return nil, grpcError(err)
	}
	st := &runtimeapi.ContainerStatus{
		Id: c.ID, Metadata: m.Metadata, State: containerState(c), CreatedAt: c.Created.UnixNano(),
		Image: &runtimeapi.ImageSpec{Image: m.Image}, ImageRef: imageRef(c), ImageId: imageRef(c),
		Labels: m.Labels, Annotations: m.Annotations, LogPath: m.LogPath,
	}
	if u, err := s.e.ProcessUser(ctx, c.ID); err == nil {
		// What the process runs as, the primary group among the
		// supplementary ones (the CRI's rule for the status).
		groups := []int64{int64(u.GID)}
		for _, g := range u.AdditionalGids {
			if g != u.GID {
				groups = append(groups, int64(g))
			}
		}
		st.User = &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{Uid: int64(u.UID), Gid: int64(u.GID), SupplementalGroups: groups}}
	}
	if !c.State.StartedAt.IsZero() {
		st.StartedAt = c.State.StartedAt.UnixNano()
	}
	if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
		st.FinishedAt = c.State.FinishedAt.UnixNano()
		st.ExitCode = int32(c.State.ExitCode)
		switch {
		case c.State.OOMKilled:
			st.Reason = "OOMKilled"
		case c.State.ExitCode == 0:
			st.Reason = "Completed"
		default:
			st.Reason = "Error"
		}
		st.Message = c.State.Error
	}
	for _, mp := range c.Mounts {
		prop := runtimeapi.MountPropagation_PROPAGATION_PRIVATE
		switch mp.Propagation {
		case "rslave", "slave":
			prop = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
		case "rshared", "shared":
			prop = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
		}
		cm := &runtimeapi.Mount{ContainerPath: mp.Destination, HostPath: mp.Source, Readonly: !mp.RW, Propagation: prop, RecursiveReadOnly: mp.ReadOnlyRecursive}
		if mp.Type == "image" {
			cm.HostPath = ""
			cm.Image = &runtimeapi.ImageSpec{Image: mp.Name, ImageRef: mp.Name}
			cm.ImageSubPath = mp.Subpath
		}
		st.Mounts = append(st.Mounts, cm)
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: st}
	if req.GetVerbose() {
		info, _ := json.Marshal(c)
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// maxExecSyncOutput bounds what ExecSync keeps of each stream (16 MiB,
// containerd's bound); the rest is read and dropped.
const maxExecSyncOutput = 16 << 20

// ExecSync runs a command in a running container and returns its output
// and exit code; past the request's timeout the command is killed and
// the call answers DeadlineExceeded.
func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	c, _, err := s.container(ctx, req.GetContainerId())
	if err != nil {
		return nil, grpcError(err)
	}
	if len(req.GetCmd()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "ExecSync: no command given")
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, grpcError(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, grpcError(err)
	}
	var stdout, stderr bytes.Buffer
	var wg sync.WaitGroup
	for _, x := range []struct {
		r *os.File
		b *bytes.Buffer
	}{{outR, &stdout}, {errR, &stderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer x.r.Close()
			io.Copy(x.b, io.LimitReader(x.r, maxExecSyncOutput))
			io.Copy(io.Discard, x.r)
		}()
	}
	p, err := s.e.Exec(ctx, c.ID, engine.ExecOptions{Cmd: req.GetCmd(), Stdout: outW, Stderr: errW})
	outW.Close()
	errW.Close()
	if err != nil {
		wg.Wait()
		var ee *engine.ExecError
		if errors.As(err, &ee) {
			return &runtimeapi.ExecSyncResponse{Stderr: []byte(ee.Msg + "\n"), ExitCode: int32(ee.Code)}, nil
		}
		return nil, grpcError(err)
	}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := p.Wait()
		done <- result{code, err}
	}()
	var timeout <-chan time.Time
	if t := req.GetTimeout(); t > 0 {
		timer := time.NewTimer(time.Duration(t) * time.Second)
		defer timer.Stop()
		timeout = timer.C
	}
	var r result
	select {
	case r = <-done:
	case <-timeout:
		killExec(p)
		<-done
		wg.Wait()
		return nil, status.Errorf(codes.DeadlineExceeded, "ExecSync: command %q timed out after %ds", strings.Join(req.GetCmd(), " "), req.GetTimeout())
	case <-ctx.Done():
		killExec(p)
		<-done
		wg.Wait()
		return nil, grpcError(ctx.Err())
	}
	wg.Wait()
	if r.err != nil {
		return nil, grpcError(r.err)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: int32(r.code)}, nil
}

// killExec kills an ExecSync's process past its time, through its
// driver (a VM's has no host pid).
func killExec(p *engine.ExecProcess) {
	p.Signal(unix.SIGKILL)
}

// UpdateContainerResources changes a container's memory and CPU limits
// (at once while it runs).
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	c, _, err := s.container(ctx, req.GetContainerId())
	if err != nil {
		return nil, grpcError(err)
	}
	var o engine.UpdateOptions
	if r := req.GetLinux(); r != nil {
		if mem := r.GetMemoryLimitInBytes(); mem > 0 {
			o.Memory = &mem
		}
		if q, per := r.GetCpuQuota(), r.GetCpuPeriod(); q > 0 && per > 0 {
			cpus := float64(q) / float64(per)
			o.CPUs = &cpus
		}
	}
	if err := s.e.Update(ctx, c.ID, o); err != nil {
		return nil, grpcError(err)
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}
