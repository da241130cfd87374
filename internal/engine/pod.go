//go:build linux

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/log"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/network/netns"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/trace"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Pods. A pod is a set of namespaces that its containers join, with no
// process of its own (no pause container): its network namespace is
// pinned at <state>/netns/<pod id> with its CNI attachments, its IPC and
// UTS namespaces at <state>/pods/<id>/ipc and uts, its /dev/shm is a
// tmpfs at <state>/pods/<id>/shm, and its /etc/hosts, /etc/hostname and
// /etc/resolv.conf are files in <root>/pods/<id>/ that every container
// of the pod mounts.
//
// Invariants:
//   - A pod's record says what it should be (PodReady or PodStopped);
//     what is pinned is checked against the kernel (a reboot empties
//     <state>), so a ready pod whose pins are gone reports stopped, and
//     every step (pin, unpin) is idempotent and undone on failure.
//   - Lock order: a pod's lock ("pod-<id>") before any container's.
//     Creating a container in a pod holds the pod's lock, so a pod
//     removal either sees the container or comes before it.
//   - A container of a pod records the pod's ID (Container.Pod) and its
//     NetworkMode, IpcMode and UTSMode are "pod:<id>" (or "host" for a
//     pod on the host's network); it never sets up or tears down the
//     pod's network.
//   - A pod of an isolation whose driver has sandboxes
//     (runtime.SandboxDriver: a VM holding the pod's containers) has
//     its sandbox made last when pinned, in the pod's network namespace,
//     and removed first when unpinned; it is part of being pinned. Its
//     containers run in it (runtime.CreateOptions.Sandbox) and are of
//     the pod's isolation.
//   - A PID namespace cannot live without a process (it ends with its
//     init): a pod that shares one (SharePID) has a reaper process as its
//     init (pod_reaper_linux.go), pinned at <state>/pods/<id>/pid; other
//     pods have none, and each of their containers has its own.

// Pod states, as recorded.
const (
	PodCreating = "creating"
	PodReady    = "ready"
	PodStopped  = "stopped"
)

// podModePrefix marks a container's namespace modes as its pod's.
const podModePrefix = "pod:"

// Pod is a pod's record, which `berth pod inspect` shows.
type Pod struct {
	ID      string    `json:"Id"`
	Name    string    `json:"Name"`
	Created time.Time `json:"Created"`
	// State is the recorded one (PodReady, PodStopped); Status, filled
	// in when listed, is podman's summary of the pod and its containers.
	State       string            `json:"State"`
	Status      string            `json:"Status,omitempty"`
	Hostname    string            `json:"Hostname"`
	Labels      map[string]string `json:"Labels,omitempty"`
	Annotations map[string]string `json:"Annotations,omitempty"`
	// NetworkMode is "bridge", a network's name, "none" or "host".
	NetworkMode  string                `json:"NetworkMode"`
	Networks     []NetworkRequest      `json:"Networks,omitempty"`
	PortBindings []network.PortMapping `json:"PortBindings,omitempty"`
	DNS          []string              `json:"Dns,omitempty"`
	DNSSearch    []string              `json:"DnsSearch,omitempty"`
	DNSOptions   []string              `json:"DnsOptions,omitempty"`
	ExtraHosts   []string              `json:"ExtraHosts,omitempty"`
	// IpcMode is "" (the pod's own) or "host".
	IpcMode      string `json:"IpcMode,omitempty"`
	CgroupParent string `json:"CgroupParent,omitempty"`
	ShmSize      int64  `json:"ShmSize,omitempty"`
	// SharePID: the containers share one PID namespace, held by the
	// reaper (its pid and start time while the pod is ready).
	SharePID bool `json:"SharePID,omitempty"`
	// IDMap: the pod's containers share one user namespace of this
	// mapping (held by the reaper, pinned at <state>/pods/<id>/user).
	IDMap *IDMap `json:"IDMap,omitempty"`
	// Isolation is the driver of the pod and its containers ("" for the
	// default); a driver with sandboxes holds the pod in one.
	Isolation string `json:"Isolation,omitempty"`
	// SandboxResources size its sandbox (PodOptions.Resources).
	SandboxResources *specs.LinuxResources `json:"SandboxResources,omitempty"`
	ReaperPid        int                   `json:"ReaperPid,omitempty"`
	ReaperStart      uint64                `json:"ReaperStart,omitempty"`
	// The process creating the pod (State creating): if it is gone, the
	// next command that finds the pod undoes what it made.
	OwnerPid   int    `json:"OwnerPid,omitempty"`
	OwnerStart uint64 `json:"OwnerStart,omitempty"`
	// NetworkSettings are the pod's endpoints while it is ready.
	NetworkSettings NetworkSettings `json:"NetworkSettings"`
	// Containers, filled in when listed or inspected: the pod's
	// containers' IDs, names and statuses.
	Containers []PodContainer `json:"Containers,omitempty"`
	// warmEndpoints, while the pod is made from a warm network
	// namespace, are that namespace's endpoints (not recorded).
	warmEndpoints []network.Endpoint
}

// PodContainer is a container of a pod as the pod's listing shows it.
type PodContainer struct {
	ID     string `json:"Id"`
	Name   string `json:"Name"`
	Status string `json:"State"`
}

// PodOptions configure a new pod.
type PodOptions struct {
	Name, Hostname string
	Labels         map[string]string
	Annotations    map[string]string
	// NetworkMode: "" or "bridge" (the default network), a network's
	// name, "none" or "host"; with CNI set, "" or "cni".
	NetworkMode string
	// CNI puts the pod on the network of a CNI configuration file (the
	// Kubernetes node's pod network) instead of one of berth's.
	CNI          *network.CNIRef
	IP, MAC      string
	Aliases      []string
	Ports        []network.PortMapping
	DNS          []string
	DNSSearch    []string
	DNSOptions   []string
	ExtraHosts   []string
	IpcMode      string
	CgroupParent string
	ShmSize      int64
	// ShareProcess gives the pod's containers one PID namespace (held
	// by a reaper process: see the invariants).
	ShareProcess bool
	// UIDMaps and GIDMaps give the pod's containers one user namespace
	// of their own with this mapping (root must be mapped; GIDMaps
	// default to UIDMaps). Its host IDs are the caller's to choose (the
	// kubelet's), not reserved in the engine's table.
	UIDMaps, GIDMaps []specs.LinuxIDMapping
	// Isolation is the pod's driver ("" or "default": the default);
	// every container of the pod is of it. Under "vm" the pod is one VM
	// that holds its containers.
	Isolation string
	// Resources size a pod's sandbox (the VM's memory and vCPUs); nil
	// for the driver's default. Ignored without a sandbox.
	Resources *specs.LinuxResources
}

func (e *Engine) podsDB() *store.DB            { return e.db.Pods() }
func (e *Engine) podDir(id string) string      { return filepath.Join(e.opts.Root, "pods", id) }
func (e *Engine) podStateDir(id string) string { return filepath.Join(e.opts.State, "pods", id) }
func (e *Engine) podShm(id string) string      { return filepath.Join(e.podStateDir(id), "shm") }
func (e *Engine) podLock(ctx context.Context, id string) (func(), error) {
	return e.lock(ctx, "pod-"+id)
}

func decodePod(r store.Row) (*Pod, error) {
	var p Pod
	if err := json.Unmarshal(r.Data, &p); err != nil {
		return nil, fmt.Errorf("engine: record of pod %s is corrupt: %w", r.ID, err)
	}
	p.ID, p.Name = r.ID, r.Name
	return &p, nil
}

// getPod resolves a pod's name, ID or ID prefix (a full ID in any
// namespace, as for containers).
func (e *Engine) getPod(ctx context.Context, ref string) (*Pod, error) {
	db := e.podsDB()
	if len(ref) == 64 && isHexID(ref) {
		if r, err := db.Get(ctx, ref); err == nil {
			return decodePod(r)
		}
	}
	r, err := db.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	return decodePod(r)
}

func (e *Engine) updatePod(ctx context.Context, id string, fn func(p *Pod) error) (*Pod, error) {
	var out *Pod
	err := e.podsDB().Update(ctx, id, func(r *store.Row) error {
		p, err := decodePod(*r)
		if err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
		data, err := json.Marshal(p)
		if err != nil {
			return err
		}
		r.Data = data
		out = p
		return nil
	})
	return out, err
}

// PodCreate makes a pod and readies it: its namespaces pinned, its
// networks attached, its files written. On failure nothing is left.
func (e *Engine) PodCreate(ctx context.Context, o PodOptions) (_ *Pod, retErr error) {
	if o.Name != "" && !validName.MatchString(o.Name) {
		return nil, fmt.Errorf("invalid pod name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed: %w", o.Name, ErrInvalid)
	}
	if o.IpcMode != "" && o.IpcMode != "host" {
		return nil, fmt.Errorf("pod --ipc %q: the pod's own (\"\") or host: %w", o.IpcMode, ErrInvalid)
	}
	if o.CgroupParent != "" && (strings.Contains(o.CgroupParent, "..") || strings.ContainsAny(o.CgroupParent, "\x00\n")) {
		return nil, fmt.Errorf("--cgroup-parent %q: not a cgroup path: %w", o.CgroupParent, ErrInvalid)
	}
	for _, h := range o.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok || name == "" || net.ParseIP(ip) == nil {
			return nil, fmt.Errorf("--add-host %q: use name:ip: %w", h, ErrInvalid)
		}
	}
	for _, d := range o.DNS {
		if net.ParseIP(d) == nil {
			return nil, fmt.Errorf("--dns %q is not an IP address: %w", d, ErrInvalid)
		}
	}
	var idmap *IDMap
	if len(o.UIDMaps) > 0 || len(o.GIDMaps) > 0 {
		if o.IpcMode == "host" || o.NetworkMode == "host" {
			return nil, fmt.Errorf("a pod user namespace with the host's network or IPC namespace: %w", ErrInvalid)
		}
		gids := o.GIDMaps
		if len(gids) == 0 {
			gids = o.UIDMaps
		}
		for _, side := range []struct {
			what string
			m    []specs.LinuxIDMapping
		}{{"uid", o.UIDMaps}, {"gid", gids}} {
			if _, ok := toHost(side.m, 0); !ok {
				return nil, fmt.Errorf("pod user namespace: the %s mapping %v does not map the container's root (0): %w", side.what, side.m, ErrInvalid)
			}
		}
		idmap = &IDMap{UIDs: o.UIDMaps, GIDs: gids}
	}
	iso, err := e.podIsolation(o)
	if err != nil {
		return nil, err
	}
	ports, err := choosePodPorts(o.Ports)
	if err != nil {
		return nil, err
	}
	p := &Pod{
		Name: o.Name, Created: time.Now().UTC(), State: PodCreating, Hostname: o.Hostname,
		Labels: o.Labels, Annotations: o.Annotations, PortBindings: ports,
		DNS: o.DNS, DNSSearch: o.DNSSearch, DNSOptions: o.DNSOptions, ExtraHosts: o.ExtraHosts,
		IpcMode: o.IpcMode, CgroupParent: o.CgroupParent, ShmSize: o.ShmSize, SharePID: o.ShareProcess, IDMap: idmap,
		OwnerPid: os.Getpid(), OwnerStart: procStart(os.Getpid()), Isolation: iso,
	}
	if iso != "" {
		p.SandboxResources = o.Resources
	}
	switch mode := o.NetworkMode; {
	case o.CNI != nil:
		if mode != "" && mode != "cni" {
			return nil, fmt.Errorf("pod network %q and a CNI configuration (%s): give one: %w", mode, o.CNI.File, ErrInvalid)
		}
		if o.IP != "" || o.MAC != "" || len(o.Aliases) > 0 {
			return nil, fmt.Errorf("--ip, --mac-address and --network-alias on the CNI network %s: its configuration gives addresses: %w", o.CNI.Name, ErrInvalid)
		}
		p.NetworkMode = "cni"
		p.Networks = []NetworkRequest{{Name: o.CNI.Name, CNI: o.CNI}}
	case mode == "" || mode == "default" || mode == "bridge":
		p.NetworkMode = "bridge"
		p.Networks = []NetworkRequest{{Name: network.DefaultName, IP: o.IP, MAC: o.MAC, Aliases: o.Aliases}}
	case mode == "none" || mode == "host":
		p.NetworkMode = mode
	default:
		recorded, req, err := e.namedNetwork(ctx, "pod --network", mode, NetworkRequest{IP: o.IP, MAC: o.MAC, Aliases: o.Aliases})
		if err != nil {
			return nil, err
		}
		p.NetworkMode, p.Networks = recorded, []NetworkRequest{req}
	}
	if len(p.Networks) == 0 && (o.IP != "" || o.MAC != "" || len(o.Aliases) > 0 || len(o.Ports) > 0) {
		return nil, fmt.Errorf("--ip, --mac-address, --network-alias and -p need a bridge network, not pod --network %s: %w", p.NetworkMode, ErrInvalid)
	}
	// A warm network namespace, if the pod may take one, is made under
	// the ID the pod then has (netwarm.go).
	warm := e.takeWarm(ctx, p)
	id := newID()
	if warm != nil {
		id = warm.id
	}
	p.ID = id
	if p.Hostname == "" {
		p.Hostname = ShortID(id)
		if p.Name != "" && validHostname(p.Name) {
			p.Hostname = p.Name
		}
	}
	if p.NetworkMode == "host" {
		p.Hostname, _ = os.Hostname()
	}
	err = e.insertPod(ctx, p, o.Name == "")
	if errors.Is(err, store.ErrNameInUse) && o.Name != "" {
		// The name may be held by a pod whose creator was killed: undone
		// now, it frees the name (a kubelet retries RunPodSandbox so).
		if old, gerr := e.getPod(ctx, o.Name); gerr == nil && old.State == PodCreating && e.abandoned(ctx, old) {
			err = e.insertPod(ctx, p, false)
		}
	}
	if err != nil {
		e.putBackWarm(ctx, warm)
		return nil, err
	}
	unlock, err := e.podLock(ctx, id)
	if err != nil {
		e.podsDB().Delete(context.WithoutCancel(ctx), id)
		e.putBackWarm(ctx, warm)
		return nil, err
	}
	defer unlock()
	defer func() {
		if retErr != nil {
			if err := e.unpinPod(context.WithoutCancel(ctx), p); err != nil && e.sandboxDriver(p) != nil {
				// A sandbox that would not go (a mount of it) keeps
				// the record (creating, its creator soon gone): the
				// next command that finds it undoes the rest
				// (abandoned), rather than nothing knowing of it.
				// Its creator is given up at once: a daemon that made
				// it lives on.
				e.updatePod(context.WithoutCancel(ctx), id, func(r *Pod) error { r.OwnerPid, r.OwnerStart = 0, 0; return nil })
				return
			} else if err != nil && e.keepForRetry(context.WithoutCancel(ctx), id) {
				return
			}
			os.RemoveAll(e.podDir(id))
			os.RemoveAll(e.podStateDir(id))
			e.podsDB().Delete(context.WithoutCancel(ctx), id)
		}
	}()
	trace.Phase("pod-recorded")
	if warm != nil {
		// The pod's record owns the namespace now (its undo, above,
		// releases it).
		stopAtForTest("pod-warm-taken")
		if err := e.adoptWarm(warm); err != nil {
			return nil, fmt.Errorf("pod %s: %w", p.Name, err)
		}
		p.warmEndpoints = warm.eps
	}
	ready, err := e.pinPod(ctx, p)
	if err != nil {
		return nil, err
	}
	trace.Phase("pod-ready")
	return ready, nil
}

// validHostname says whether a pod's name may be its hostname (RFC
// 1123 labels, as Kubernetes' pod names are).
func validHostname(s string) bool {
	if len(s) > 63 {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || (r == '-' && i > 0 && i < len(s)-1)
		if !ok {
			return false
		}
	}
	return s != ""
}

func (e *Engine) insertPod(ctx context.Context, p *Pod, generated bool) error {
	for try := 0; ; try++ {
		if generated {
			p.Name = randomName(try)
		}
		data, err := json.Marshal(p)
		if err != nil {
			return err
		}
		err = e.podsDB().Insert(ctx, store.Row{ID: p.ID, Name: p.Name, Data: data})
		if err == nil || !generated || !errors.Is(err, store.ErrNameInUse) || try > 20 {
			return err
		}
	}
}

// asNetHolder is p as the container-shaped value the network code and
// the /etc files are made for.
func (p *Pod) asNetHolder() *Container {
	return &Container{
		ID: p.ID, Name: p.Name,
		Config: Config{Hostname: p.Hostname},
		HostConfig: HostConfig{
			NetworkMode: p.NetworkMode, Networks: p.Networks, PortBindings: p.PortBindings,
			DNS: p.DNS, DNSSearch: p.DNSSearch, DNSOptions: p.DNSOptions, ExtraHosts: p.ExtraHosts,
		},
		NetworkSettings: p.NetworkSettings,
	}
}

// pinPod makes what a ready pod has: the network namespace and its
// endpoints, the IPC and UTS namespaces, /dev/shm and the /etc files;
// then records the pod ready. The caller holds the pod's lock; on
// failure it unpins.
func (e *Engine) pinPod(ctx context.Context, p *Pod) (*Pod, error) {
	if err := os.MkdirAll(e.podDir(p.ID), 0o700); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(e.podStateDir(p.ID), 0o700); err != nil {
		return nil, err
	}
	var eps []network.Endpoint
	if p.NetworkMode != "host" {
		if len(p.PortBindings) > 0 && p.Networks[0].CNI == nil {
			m, err := e.networks()
			if err != nil {
				return nil, err
			}
			if _, err := m.Get(ctx, p.Networks[0].Name); err != nil {
				return nil, err
			}
		}
		var err error
		// Published ports are the portmap plugin's alone: no process of
		// the pod could hold a socket for them (containerd's CRI does
		// the same), so a host port is not reserved against programs.
		var sysctls map[string]string
		if p.IDMap != nil {
			// What the containers' root, not the host's, cannot set in
			// a network namespace the host owns (as for --userns).
			sysctls = netSysctlsOutside(&Container{})
		}
		if p.warmEndpoints != nil {
			eps = p.warmEndpoints // attached ahead (netwarm.go)
		} else if eps, err = e.plumbNetns(ctx, p.ID, p.Networks, p.PortBindings, sysctls, func(error) {}); err != nil {
			return nil, fmt.Errorf("pod %s: network: %w", p.Name, err)
		}
		e.emitEndpoints(ctx, "connect", p.ID, eps)
		trace.Phase("pod-network-attached")
	}
	stopAtForTest("pod-network-attached")
	if (p.SharePID || p.IDMap != nil) && e.sandboxDriver(p) == nil {
		// (A sandbox holds a shared PID namespace itself.)
		pid, start, err := e.startPodReaper(p)
		if err != nil {
			return nil, err
		}
		p.ReaperPid, p.ReaperStart = pid, start
		if _, err := e.updatePod(ctx, p.ID, func(r *Pod) error { r.ReaperPid, r.ReaperStart = pid, start; return nil }); err != nil {
			return nil, err
		}
	}
	if p.IDMap != nil {
		// IPC and UTS are the reaper's, owned by the pod's user
		// namespace (its root mounts mqueue there).
		_, uts, _, _ := e.podNamespacePaths(p.ID)
		if err := netns.SetHostname(uts, p.Hostname); err != nil {
			return nil, fmt.Errorf("pod %s: %w", p.Name, err)
		}
	} else if p.IpcMode != "host" || p.NetworkMode != "host" {
		if err := netns.PinIPCUTS(filepath.Join(e.opts.State, "pods"), p.ID, p.Hostname); err != nil {
			return nil, fmt.Errorf("pod %s: %w", p.Name, err)
		}
	}
	if p.IpcMode != "host" {
		if err := e.mountPodShm(p); err != nil {
			return nil, err
		}
	}
	trace.Phase("pod-namespaces-pinned")
	p.NetworkSettings = NetworkSettings{Endpoints: eps}
	if p.NetworkMode != "host" {
		p.NetworkSettings.SandboxKey = e.netnsPath(p.ID)
	}
	holder := p.asNetHolder()
	for n, data := range map[string][]byte{
		"hosts":       []byte(hostsFile(holder)),
		"hostname":    []byte(p.Hostname + "\n"),
		"resolv.conf": resolvConf(holder),
	} {
		f := filepath.Join(e.podDir(p.ID), n)
		if err := writeInPlace(f, data); err != nil {
			return nil, err
		}
		if p.IDMap != nil {
			// The containers' root may edit them, as anywhere else.
			uid, gid := p.IDMap.Root()
			if err := os.Chown(f, int(uid), int(gid)); err != nil {
				return nil, err
			}
		}
	}
	if sd := e.sandboxDriver(p); sd != nil {
		o := runtime.SandboxOptions{Hostname: p.Hostname, ResolvConf: resolvConf(holder), SharePID: p.SharePID, ShmSize: p.ShmSize}
		if p.CgroupParent != "" {
			// Under the pod's cgroup (the kubelet's), as its
			// containers' would be: the VM is what the pod takes.
			o.CgroupsPath = path.Join(p.CgroupParent, "pod-"+p.ID)
		}
		if p.NetworkMode != "host" {
			o.Netns = e.netnsPath(p.ID)
		}
		o.Resources = p.SandboxResources
		// Its helper processes (a VM's QEMU) as a host user of the
		// pod's own, freed with its record.
		helper, err := e.helperUser(ctx, p.ID)
		if err != nil {
			return nil, fmt.Errorf("pod %s: %w", p.Name, err)
		}
		o.HelperUser = helper
		if err := sd.CreateSandbox(ctx, p.ID, o); err != nil {
			return nil, fmt.Errorf("pod %s: %w", p.Name, err)
		}
	}
	ready, err := e.updatePod(ctx, p.ID, func(r *Pod) error {
		r.State, r.NetworkSettings = PodReady, p.NetworkSettings
		r.OwnerPid, r.OwnerStart = 0, 0
		return nil
	})
	if err != nil {
		return nil, err
	}
	// After the record has the endpoints, which the server reads: it
	// then listens in the pod's namespace and answers its name.
	if len(eps) > 0 && onUserNetwork(holder) {
		if err := e.syncDNS(ctx, true); err != nil {
			return nil, err
		}
	}
	return ready, nil
}

// abandoned undoes a pod whose creation was cut short (its creator is
// gone) and reports whether it did; a creation still in progress is left
// alone.
func (e *Engine) abandoned(ctx context.Context, p *Pod) bool {
	if p.State != PodCreating || alive(p.OwnerPid, p.OwnerStart) {
		return false
	}
	unlock, err := e.podLock(ctx, p.ID)
	if err != nil {
		return false
	}
	defer unlock()
	if p, err = e.getPod(ctx, p.ID); err != nil || p.State != PodCreating {
		return err != nil
	}
	if err := e.unpinPod(ctx, p); err != nil {
		// Kept for the next try: a sandbox that would not go (a mount
		// of it) is still known by its record, and so are endpoints
		// whose DEL failed (keepForRetry).
		if e.sandboxDriver(p) != nil || e.keepForRetry(ctx, p.ID) {
			return false
		}
	}
	os.RemoveAll(e.podDir(p.ID))
	os.RemoveAll(e.podStateDir(p.ID))
	return e.podsDB().Delete(ctx, p.ID) == nil
}

// keepForRetry keeps, after a failed unpinPod, a pod whose record still
// lists endpoints (their DELs failed; a CNI configuration's network keeps
// its namespace pinned for them): stopped and owned by no one, so that a
// stop or a removal runs the DELs again (the kubelet's garbage
// collection removes such a sandbox; `berth pod rm`). Left creating, every
// listing would retry them (abandoned), under the pod's lock. It says
// whether it kept the record.
func (e *Engine) keepForRetry(ctx context.Context, id string) bool {
	r, err := e.getPod(ctx, id)
	if err != nil || len(r.NetworkSettings.Endpoints) == 0 {
		return false
	}
	_, err = e.updatePod(ctx, id, func(r *Pod) error {
		r.State, r.OwnerPid, r.OwnerStart = PodStopped, 0, 0
		return nil
	})
	return err == nil
}

// intendedEndpoints are the endpoints pinPod asks for (plumbNetns's
// interfaces and ports), as far as a DEL needs them.
func intendedEndpoints(p *Pod) []network.Endpoint {
	if p.NetworkMode == "host" {
		return nil
	}
	var eps []network.Endpoint
	for i, req := range p.Networks {
		name := req.Name
		if req.CNI == nil {
			// (A CNI configuration's name is its own, "bridge" too.)
			name = network.Canonical(name)
		}
		ep := network.Endpoint{Network: name, IfName: "eth" + strconv.Itoa(i), RequestIP: req.IP, RequestMAC: req.MAC, CNI: req.CNI}
		if i == 0 {
			ep.Ports = p.PortBindings
		}
		eps = append(eps, ep)
	}
	return eps
}

// mountPodShm mounts the pod's /dev/shm: a tmpfs its containers bind.
func (e *Engine) mountPodShm(p *Pod) error {
	dir := e.podShm(p.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if mounted(dir) {
		return nil
	}
	size := p.ShmSize
	if size <= 0 {
		size = 64 << 20
	}
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("mode=1777,size=%d", size)); err != nil {
		return fmt.Errorf("pod %s: mount its /dev/shm: %w", p.Name, err)
	}
	return nil
}

// unpinPod undoes pinPod: detaches the networks, removes the network
// namespace, unpins IPC and UTS and unmounts /dev/shm. Each part is
// idempotent; errors are joined, and endpoints whose DEL failed stay in
// the record for the next attempt.
func (e *Engine) unpinPod(ctx context.Context, p *Pod) error {
	var errs []error
	if sd := e.sandboxDriver(p); sd != nil {
		// The sandbox first: its VM holds taps in the namespace.
		if err := sd.DeleteSandbox(ctx, p.ID); err != nil {
			return fmt.Errorf("pod %s: %w", p.Name, err)
		}
	}
	// As a container's: the namespace goes first and the veths with it
	// in the kernel's own time (releaseNetns).
	eps := p.NetworkSettings.Endpoints
	if p.State == PodCreating && len(eps) == 0 {
		// A creation cut short (kill -9) may have run its ADDs without
		// recording them (the endpoints are recorded with the pod
		// ready): their DELs release the leases and rules it may hold;
		// a DEL of what was never added is no error.
		eps = intendedEndpoints(p)
	}
	failed, err := e.releaseNetns(ctx, p.ID, eps)
	errs = append(errs, err)
	e.emitEndpoints(ctx, "disconnect", p.ID, slices.DeleteFunc(slices.Clone(eps), func(ep network.Endpoint) bool {
		return slices.ContainsFunc(failed, func(f network.Endpoint) bool { return f.Network == ep.Network })
	}))
	if !slices.ContainsFunc(failed, isCNIEndpoint) {
		// (Kept for a CNI configuration's DEL to be retried in it:
		// releaseNetns.)
		errs = append(errs, netns.Remove(e.netnsDir(), p.ID))
	}
	errs = append(errs, netns.UnpinIPCUTS(e.podStateDir(p.ID)))
	errs = append(errs, e.stopPodReaper(p))
	for dir := e.podShm(p.ID); mounted(dir); {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("pod %s: unmount its /dev/shm: %w", p.Name, err))
			break
		}
	}
	if len(p.NetworkSettings.Endpoints) > 0 || len(failed) > 0 {
		// Those whose DEL failed stay for the next attempt (a creation
		// cut short included: abandoned then keeps the record).
		if _, err := e.updatePod(ctx, p.ID, func(r *Pod) error {
			r.NetworkSettings.Endpoints = failed
			return nil
		}); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
		}
		if onUserNetwork(p.asNetHolder()) {
			e.syncDNS(ctx, false)
		}
	}
	return errors.Join(errs...)
}

// podPinned says whether the pod's namespaces are all in place.
func (e *Engine) podPinned(p *Pod) bool {
	if p.NetworkMode != "host" {
		if ok, _ := netns.IsPinned(e.netnsPath(p.ID)); !ok {
			return false
		}
	}
	if p.IpcMode != "host" || p.NetworkMode != "host" {
		if ok, _ := netns.IPCUTSPinned(e.podStateDir(p.ID)); !ok {
			return false
		}
	}
	if sd := e.sandboxDriver(p); sd != nil {
		return sd.SandboxReady(context.Background(), p.ID)
	}
	return !p.SharePID && p.IDMap == nil || e.podReaperAlive(p)
}

// podIsolation validates a new pod's isolation and returns the name it
// is recorded under ("" for the default driver).
func (e *Engine) podIsolation(o PodOptions) (string, error) {
	name, err := e.driver.isolation(o.Isolation)
	if err != nil {
		return "", err
	}
	drv, err := e.driver.named(name)
	if err != nil {
		return "", err
	}
	if drv == e.driver.def {
		return "", nil
	}
	if _, ok := drv.(runtime.SandboxDriver); !ok {
		return "", fmt.Errorf("pod --isolation %s: that driver runs no pods: %w", name, ErrInvalid)
	}
	switch {
	case o.NetworkMode == "host":
		return "", fmt.Errorf("pod --isolation %s with --network host: its VM has network devices of its own; use a bridge network: %w", name, ErrInvalid)
	case o.IpcMode == "host":
		return "", fmt.Errorf("pod --isolation %s with --ipc host: the pod's containers share its VM's: %w", name, ErrInvalid)
	case len(o.UIDMaps) > 0 || len(o.GIDMaps) > 0:
		return "", fmt.Errorf("pod --isolation %s with a user namespace: not supported yet (the VM is the pod's boundary): %w", name, ErrInvalid)
	}
	return name, nil
}

// sandboxDriver is the pod's driver if it holds pods in sandboxes.
func (e *Engine) sandboxDriver(p *Pod) runtime.SandboxDriver {
	if p == nil || p.Isolation == "" {
		return nil
	}
	drv, err := e.driver.named(p.Isolation)
	if err != nil {
		return nil
	}
	sd, _ := drv.(runtime.SandboxDriver)
	return sd
}

// podContainers are the records of the pod's containers.
func (e *Engine) podContainers(ctx context.Context, podID string) ([]*Container, error) {
	all, err := e.listAll(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(c *Container) bool { return c.Pod != podID }), nil
}

// describe fills in the pod's Status and Containers; a recorded ready
// pod whose pins are gone (a reboot) is reported stopped.
func (e *Engine) describe(ctx context.Context, p *Pod) (*Pod, error) {
	if e.abandoned(ctx, p) {
		return nil, store.NotFound("no such pod: %s (its creation was cut short and is undone)", p.Name)
	}
	cs, err := e.podContainers(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	if p.State == PodReady && !e.podPinned(p) {
		p.State = PodStopped
	}
	running := 0
	p.Containers = nil
	for _, c := range cs {
		p.Containers = append(p.Containers, PodContainer{ID: c.ID, Name: c.Name, Status: c.State.Status})
		if c.State.Status == StatusRunning || c.State.Status == StatusPaused || c.State.Status == StatusRestarting {
			running++
		}
	}
	switch {
	case p.State == PodCreating:
		p.Status = "Creating"
	case p.State == PodStopped:
		p.Status = "Stopped"
	case len(cs) == 0 || running == 0:
		p.Status = "Created"
		if len(cs) > 0 {
			p.Status = "Exited"
		}
	case running == len(cs):
		p.Status = "Running"
	default:
		p.Status = "Degraded"
	}
	return p, nil
}

// PodGet returns a pod by name, ID or ID prefix, described.
func (e *Engine) PodGet(ctx context.Context, ref string) (*Pod, error) {
	p, err := e.getPod(ctx, ref)
	if err != nil {
		return nil, err
	}
	return e.describe(ctx, p)
}

// PodList returns the pods of the engine's namespace, oldest first,
// described.
func (e *Engine) PodList(ctx context.Context) ([]*Pod, error) {
	rows, err := e.podsDB().List(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Pod
	for _, r := range rows {
		p, err := decodePod(r)
		if err != nil {
			log.From(ctx).Warn(err.Error())
			continue
		}
		if p, err = e.describe(ctx, p); errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// PodStart readies a stopped pod again (its pins and networks) and
// starts its containers that do not run. It returns the pod and the
// containers that failed to start (joined errors).
func (e *Engine) PodStart(ctx context.Context, ref string) (*Pod, error) {
	p, err := e.getPod(ctx, ref)
	if err != nil {
		return nil, err
	}
	unlock, err := e.podLock(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	if p, err = e.getPod(ctx, p.ID); err != nil {
		unlock()
		return nil, err
	}
	if !e.podPinned(p) {
		// Whatever is half there (a reboot, a killed stop) goes first;
		// endpoints whose DEL fails again keep the pod stopped (a new
		// attachment would replace their record and their namespace).
		if uerr := e.unpinPod(ctx, p); uerr != nil {
			if r, gerr := e.getPod(ctx, p.ID); gerr == nil && len(r.NetworkSettings.Endpoints) > 0 {
				unlock()
				return nil, fmt.Errorf("pod %s: its networks' earlier detach failed again: %w", p.Name, uerr)
			}
		}
		if p, err = e.getPod(ctx, p.ID); err == nil {
			p, err = e.pinPod(ctx, p)
		}
		if err != nil {
			e.unpinPod(context.WithoutCancel(ctx), p)
			unlock()
			return nil, err
		}
	}
	unlock()
	cs, err := e.podContainers(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, c := range cs {
		if c, err := e.refresh(ctx, c); err != nil || isRunning(c) {
			continue
		}
		s, err := e.Start(ctx, c.ID, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", c.Name, err))
			continue
		}
		s.release()
	}
	p, err = e.PodGet(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	return p, errors.Join(errs...)
}

// PodStop stops the pod's containers (timeout: each one's, as stop's)
// and then its namespaces and networks; the record stays (stopped).
func (e *Engine) PodStop(ctx context.Context, ref string, timeout *int) (*Pod, error) {
	p, err := e.getPod(ctx, ref)
	if err != nil {
		return nil, err
	}
	var errs []error
	cs, err := e.podContainers(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	errs = append(errs, e.stopAll(ctx, cs, timeout)...)
	unlock, err := e.podLock(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if p, err = e.getPod(ctx, p.ID); err != nil {
		return nil, err
	}
	errs = append(errs, e.unpinPod(ctx, p))
	if _, err := e.updatePod(ctx, p.ID, func(r *Pod) error { r.State = PodStopped; return nil }); err != nil {
		errs = append(errs, err)
	}
	p, err = e.PodGet(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	return p, errors.Join(errs...)
}

// stopAll stops containers concurrently (a pod's stop waits for the
// slowest, not the sum).
func (e *Engine) stopAll(ctx context.Context, cs []*Container, timeout *int) []error {
	errc := make(chan error, len(cs))
	for _, c := range cs {
		go func() {
			err := e.Stop(ctx, c.ID, timeout)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				err = fmt.Errorf("container %s: %w", c.Name, err)
			} else {
				err = nil
			}
			errc <- err
		}()
	}
	var errs []error
	for range cs {
		errs = append(errs, <-errc)
	}
	return errs
}

// PodRemoveOptions: Force removes a pod that has containers (killing
// those that run), as podman's pod rm -f.
type PodRemoveOptions struct {
	Force bool
	// IgnoreNetworkErrors removes the pod even when its networks' DELs
	// fail (a plugin or a network add-on gone for good), leaving to the
	// operator what the plugins held (addresses, rules); the failures are
	// returned joined in ErrNetworkLeft. The CLI's choice only: the
	// kubelet retries instead.
	IgnoreNetworkErrors bool
}

// ErrNetworkLeft: a pod was removed without its networks' DELs
// (PodRemoveOptions.IgnoreNetworkErrors).
var ErrNetworkLeft = errors.New("removed without releasing its network")

// PodRemove removes a pod: its containers (with Force), its pins and
// networks, its files and its record.
func (e *Engine) PodRemove(ctx context.Context, ref string, o PodRemoveOptions) error {
	p, err := e.getPod(ctx, ref)
	if err != nil {
		return err
	}
	unlock, err := e.podLock(ctx, p.ID)
	if err != nil {
		return err
	}
	defer unlock()
	cs, err := e.podContainers(ctx, p.ID)
	if err != nil {
		return err
	}
	if len(cs) > 0 && !o.Force {
		return fmt.Errorf("pod %s has %d containers: remove them first, or remove the pod with -f: %w", p.Name, len(cs), ErrInvalidState)
	}
	var errs []error
	for _, c := range cs {
		if err := e.Remove(ctx, c.ID, RemoveOptions{Force: true}); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, fmt.Errorf("container %s: %w", c.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pod %s: %w", p.Name, err)
	}
	stopAtForTest("pod-containers-removed")
	if p, err = e.getPod(ctx, p.ID); err != nil {
		return err
	}
	var left error
	if err := e.unpinPod(ctx, p); err != nil {
		if !o.IgnoreNetworkErrors {
			return fmt.Errorf("pod %s: %w (remove it again, or with --ignore-network-errors)", p.Name, err)
		}
		// The endpoints are forgotten and the rest undone again:
		// without them it fails only for what is not the network's.
		r, gerr := e.updatePod(ctx, p.ID, func(r *Pod) error { r.NetworkSettings.Endpoints = nil; return nil })
		if gerr != nil {
			return gerr
		}
		if err2 := e.unpinPod(ctx, r); err2 != nil {
			return fmt.Errorf("pod %s: %w (remove it again)", p.Name, err2)
		}
		left = fmt.Errorf("pod %s: %w: %w", p.Name, ErrNetworkLeft, err)
	}
	os.RemoveAll(e.podStateDir(p.ID))
	if err := os.RemoveAll(e.podDir(p.ID)); err != nil {
		return err
	}
	if err := e.podsDB().Delete(ctx, p.ID); err != nil {
		return err
	}
	return left
}

// choosePodPorts gives each published port without a host port (-p
// ::80) one the kernel finds free now, as podman's pod create does: the
// pod's record keeps it, so the port stays the same across pod stop and
// start. The choosing sockets close at once: no process of a pod holds
// its ports (see pinPod), so a program may still take one before the
// portmap rule is made.
func choosePodPorts(ports []network.PortMapping) ([]network.PortMapping, error) {
	if !slices.ContainsFunc(ports, func(m network.PortMapping) bool { return m.HostPort == 0 }) {
		return ports, nil
	}
	chosen, _, held, err := wantedPorts(&Container{HostConfig: HostConfig{PortBindings: ports}}, nil, true)
	closeAll(held)
	if err != nil {
		return nil, fmt.Errorf("pod: publish a port: %w", err)
	}
	return chosen, nil
}

// joinPod points a container's options at its pod's namespaces and files,
// refusing what the pod decides.
func (e *Engine) joinPod(ctx context.Context, o *CreateOptions) (*Pod, error) {
	p, err := e.getPod(ctx, o.Pod)
	if err != nil {
		return nil, err
	}
	if p.State == PodCreating {
		return nil, fmt.Errorf("pod %s is being created: %w", p.Name, ErrInvalidState)
	}
	if p.State == PodStopped || !e.podPinned(p) {
		return nil, fmt.Errorf("pod %s is stopped: start it first (berth pod start %s): %w", p.Name, p.Name, ErrInvalidState)
	}
	for _, f := range []struct {
		flag string
		set  bool
	}{
		{"--network", o.NetworkMode != "" && o.NetworkMode != "pod"}, {"--ip", o.IP != ""}, {"--mac-address", o.MAC != ""},
		{"--network-alias", len(o.Aliases) > 0}, {"-p", len(o.Ports) > 0}, {"-P", o.PublishAll},
		{"--dns", len(o.DNS) > 0}, {"--dns-search", len(o.DNSSearch) > 0}, {"--dns-option", len(o.DNSOptions) > 0},
		{"--add-host", len(o.ExtraHosts) > 0}, {"--hostname", o.Hostname != ""}, {"--link", len(o.Links) > 0},
		{"--uts", o.UTSMode != ""}, {"--ipc", o.IpcMode != ""}, {"--userns", o.UsernsMode != "" && o.UsernsMode != "host"},
		{"--uidmap/--gidmap", len(o.UIDMaps) > 0 || len(o.GIDMaps) > 0}, {"--domainname", o.Domainname != ""},
		{"--pid", p.SharePID && o.PidMode != ""},
	} {
		if f.set {
			return nil, fmt.Errorf("%s: the container's pod %s decides it (set it on the pod): %w", f.flag, p.Name, ErrInvalid)
		}
	}
	iso, err := e.driver.isolation(o.Isolation)
	if err != nil {
		return nil, err
	}
	podIso := p.Isolation
	if podIso == "" {
		podIso = e.driver.def.Name()
	}
	if o.Isolation != "" && o.Isolation != "default" && iso != podIso {
		return nil, fmt.Errorf("--isolation %s in pod %s of isolation %s: a pod's containers are of its isolation (create the pod with --isolation): %w", iso, p.Name, podIso, ErrInvalid)
	}
	o.Isolation = p.Isolation
	o.Pod = p.ID
	o.NetworkMode = podModePrefix + p.ID
	if p.NetworkMode == "host" {
		o.NetworkMode = "host"
	}
	o.IpcMode = podModePrefix + p.ID
	if p.IpcMode == "host" {
		o.IpcMode = "host"
	}
	if p.SharePID {
		o.PidMode = podModePrefix + p.ID
	}
	o.UTSMode = podModePrefix + p.ID
	if p.NetworkMode == "host" {
		o.UTSMode = "host"
	}
	if o.CgroupParent == "" {
		o.CgroupParent = p.CgroupParent
	}
	return p, nil
}

// podNamespacePaths are the spec's namespace paths of a pod's
// container: the pod's pins.
func (e *Engine) podNamespacePaths(podID string) (ipc, uts, pid, user string) {
	d := e.podStateDir(podID)
	return filepath.Join(d, "ipc"), filepath.Join(d, "uts"), filepath.Join(d, "pid"), filepath.Join(d, "user")
}
