//go:build linux

package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/engine/spec"
	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/engine/tinit"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/trace"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CreateOptions are `berth create`'s settings.
type CreateOptions struct {
	Name  string
	Image string
	// Cmd overrides the image's Cmd when non-empty; Entrypoint (non-nil)
	// the image's Entrypoint.
	Cmd        []string
	Entrypoint *[]string
	// Env entries are KEY=VALUE (the CLI resolves bare KEYs and env files).
	Env        []string
	User       string
	WorkingDir string
	Hostname   string
	Tty        bool
	OpenStdin  bool
	// ConsoleSize is the tty's height and width from the start, before
	// a client resizes it (zero: none).
	ConsoleSize [2]uint
	// Binds are "host:container[:ro|rw]".
	Binds []string
	// MountExtras are what --mount says beyond a -v value, by the
	// bind's container path.
	MountExtras map[string]MountExtra
	Tmpfs       []string
	ReadOnly    bool
	Privileged  bool
	CapAdd      []string
	CapDrop     []string
	SecurityOpt []string
	Memory      int64
	CPUs        float64
	PidsLimit   int64
	Ulimits     []string
	Restart     RestartPolicy
	AutoRemove  bool
	StopSignal  string
	StopTimeout *int
	Init        bool
	// The healthcheck: --health-cmd (CMD-SHELL), --health-interval,
	// --health-timeout, --health-start-period, --health-retries over the
	// image's HEALTHCHECK; NoHealthcheck disables any.
	HealthCmd                                        string
	HealthInterval, HealthTimeout, HealthStartPeriod time.Duration
	HealthRetries                                    int
	NoHealthcheck                                    bool
	HealthStartInterval                              time.Duration
	Labels                                           map[string]string
	Isolation                                        string
	NetworkMode                                      string
	LogMaxSize                                       int64
	LogMaxFiles                                      int
	LogTag                                           string
	// LogDriver is json-file (""), k8s-file or none; LogPath, with
	// k8s-file only, is where the log goes (an absolute path; its
	// directory must exist).
	LogDriver, LogPath string
	// Networking (NetworkMode: bridge (default), none, host,
	// container:NAME, or a network's name).
	IP, MAC    string
	Aliases    []string
	Ports      []network.PortMapping
	PublishAll bool
	DNS        []string
	DNSSearch  []string
	ExtraHosts []string
	DNSOptions []string

	// Links are legacy links, NAME[:ALIAS] (see Link).
	Links []string

	// ExtraNetworks are joined too, after the NetworkMode's (which must
	// be a bridge network): docker API 1.44's create with one endpoint
	// per network, as compose sends for a service on several networks.
	ExtraNetworks []NetworkRequest
	// Resources beyond Memory, CPUs and PidsLimit; OOMScoreAdj (nil:
	// inherited); ShmSize in bytes (0: 64 MiB).
	Resources   spec.Resources
	OOMScoreAdj *int
	ShmSize     int64
	// Devices are HOST[:CONTAINER[:PERMS]]; DeviceCgroupRules docker's
	// "c 1:3 rwm" rules; Sysctls namespaced sysctls; GroupAdd groups.
	Devices           []string
	DeviceCgroupRules []string
	Sysctls           map[string]string
	GroupAdd          []string
	// Namespaces: PidMode "", host or container:NAME; IpcMode "",
	// private, shareable, none, host or container:NAME; UTSMode "" or
	// host; CgroupnsMode "", private or host; UsernsMode "", host or
	// auto[:size=N].
	PidMode, IpcMode, UTSMode, CgroupnsMode, UsernsMode string
	// UIDMaps and GIDMaps are --uidmap/--gidmap, CONTAINER:HOST:SIZE: a
	// user namespace of the container's own with exactly that mapping
	// (GIDMaps default to UIDMaps).
	UIDMaps, GIDMaps []string
	// CgroupParent is the cgroup the container's is made under
	// (default /berth).
	CgroupParent string
	Domainname   string
	// VolumesFrom are CONTAINER[:ro|rw]: that container's mounts.
	VolumesFrom []string
	Annotations map[string]string
	// Expose are ports to expose, PORT[/PROTO] or FROM-TO[/PROTO].
	Expose []string
	// MaskedPaths and ReadonlyPaths, when not nil, replace the default
	// lists of paths an unprivileged container has masked and read-only
	// (the CRI's security context).
	MaskedPaths, ReadonlyPaths []string
	// StrictGroups: the supplementary groups are GroupAdd's alone (not
	// the user's memberships in the image's /etc/group).
	StrictGroups bool
	// ImageMounts are images mounted read-only into the container.
	ImageMounts []ImageMount
	// Pod is the pod (name or ID) whose network, IPC and UTS namespaces
	// and /etc files the container shares; the pod decides them, so
	// the options about them must be unset.
	Pod string
}

// ParseExpose turns --expose values into ExposedPorts keys ("80/tcp").
func ParseExpose(list []string) (map[string]struct{}, error) {
	out := map[string]struct{}{}
	for _, e := range list {
		ports, proto, _ := strings.Cut(e, "/")
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return nil, fmt.Errorf("--expose %q: invalid protocol %q (tcp, udp or sctp): %w", e, proto, ErrInvalid)
		}
		lo, hi, isRange := strings.Cut(ports, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		b := a
		if err == nil && isRange {
			b, err = strconv.ParseUint(hi, 10, 16)
		}
		if err != nil || a == 0 || b < a {
			return nil, fmt.Errorf("--expose %q: invalid range format for --expose: %w", e, ErrInvalid)
		}
		for p := a; p <= b; p++ {
			out[fmt.Sprintf("%d/%s", p, proto)] = struct{}{}
		}
	}
	return out, nil
}

// namespaceMode checks a --pid/--ipc/--uts/--cgroupns/--userns value
// against what docker takes for it, resolving container:NAME to the
// container's ID.
func (e *Engine) namespaceMode(ctx context.Context, flag, mode string, allowed ...string) (string, error) {
	if mode == "" || slices.Contains(allowed, mode) {
		return mode, nil
	}
	if name, ok := strings.CutPrefix(mode, "container:"); ok && slices.Contains(allowed, "container:") {
		other, err := e.get(ctx, name)
		if err != nil {
			return "", fmt.Errorf("%s %s: %w", flag, mode, err)
		}
		return "container:" + other.ID, nil
	}
	var want []string
	for _, a := range allowed {
		if a == "container:" {
			a = "container:NAME"
		}
		want = append(want, a)
	}
	return "", fmt.Errorf("%s %q: invalid mode (use %s): %w", flag, mode, strings.Join(want, ", "), ErrInvalid)
}

// Defaults of the log rotation (docker's "local" driver's).
const (
	DefaultLogMaxSize  = 20 << 20
	DefaultLogMaxFiles = 5
)

var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ParseRestartPolicy parses docker's --restart values.
func ParseRestartPolicy(s string) (RestartPolicy, error) {
	name, n, hasN := strings.Cut(s, ":")
	switch name {
	case "", "no":
		if hasN {
			break
		}
		return RestartPolicy{Name: "no"}, nil
	case "always", "unless-stopped":
		if hasN {
			return RestartPolicy{}, fmt.Errorf("--restart %s: a retry count applies only to on-failure: %w", s, ErrInvalid)
		}
		return RestartPolicy{Name: name}, nil
	case "on-failure":
		p := RestartPolicy{Name: name}
		if hasN {
			var v int
			if _, err := fmt.Sscanf(n, "%d", &v); err != nil || v < 0 || fmt.Sprint(v) != n {
				return RestartPolicy{}, fmt.Errorf("--restart %s: the retry count must be a number of 0 or more: %w", s, ErrInvalid)
			}
			p.MaximumRetryCount = v
		}
		return p, nil
	}
	return RestartPolicy{}, fmt.Errorf("--restart %q: use no, on-failure[:max-retries], always or unless-stopped: %w", s, ErrInvalid)
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Create makes a container from an image: its record, writable layer,
// mounted root filesystem and OCI bundle. It does not start it.
func (e *Engine) Create(ctx context.Context, o CreateOptions) (_ *Container, retErr error) {
	trace.Phase("create")
	defer trace.Phase("created")
	isolation, err := e.driver.isolation(o.Isolation)
	if err != nil {
		return nil, err
	}
	if o.Name != "" && !validName.MatchString(o.Name) {
		return nil, fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed: %w", o.Name, ErrInvalid)
	}
	if o.Restart.Name == "" {
		o.Restart.Name = "no"
	}
	if o.AutoRemove && o.Restart.Name != "no" {
		return nil, fmt.Errorf("--rm and --restart %s conflict: a container removed at exit cannot be restarted: %w", o.Restart.Name, ErrInvalid)
	}
	if o.StopSignal != "" {
		if _, err := ParseSignal(o.StopSignal); err != nil {
			return nil, err
		}
	}
	for _, so := range o.SecurityOpt {
		switch {
		case so == "no-new-privileges" || noNewPrivValue(so) != "":
		case so == "seccomp=unconfined" || so == "seccomp:unconfined" || strings.HasPrefix(so, "seccomp="):
		case strings.HasPrefix(so, "label=") || strings.HasPrefix(so, "label:") || strings.HasPrefix(so, "apparmor="):
			if err := checkLSMOpt(so); err != nil {
				return nil, err
			}
		case so == "systempaths=unconfined":
		default:
			return nil, fmt.Errorf("--security-opt %q: berth knows seccomp=FILE|unconfined, no-new-privileges, systempaths=unconfined, label= and apparmor=: %w", so, ErrInvalid)
		}
	}
	var pod *Pod
	if o.Pod != "" {
		// Held until the record is in: a pod removal sees the container
		// or comes first (see pod.go).
		p, err := e.getPod(ctx, o.Pod)
		if err != nil {
			return nil, err
		}
		unlock, err := e.podLock(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		defer unlock()
		if pod, err = e.joinPod(ctx, &o); err != nil {
			return nil, err
		}
		// The pod's (joinPod checked a given one against it).
		if isolation, err = e.driver.isolation(o.Isolation); err != nil {
			return nil, err
		}
	}
	if pod != nil && strings.HasPrefix(o.PidMode, podModePrefix) {
		// joinPod's: the pod's PID namespace.
	} else if o.PidMode, err = e.namespaceMode(ctx, "--pid", o.PidMode, "host", "container:"); err != nil {
		return nil, err
	}
	if pod != nil {
		// joinPod set the IPC and UTS modes.
	} else if o.IpcMode, err = e.namespaceMode(ctx, "--ipc", o.IpcMode, "private", "shareable", "none", "host", "container:"); err != nil {
		return nil, err
	}
	if o.IpcMode == "" {
		o.IpcMode = "private" // docker's default-ipc-mode
	}
	if donor, ok := strings.CutPrefix(o.IpcMode, "container:"); ok {
		other, err := e.get(ctx, donor)
		if err != nil {
			return nil, err
		}
		if m := other.HostConfig.IpcMode; m != "shareable" && m != "host" {
			return nil, fmt.Errorf("--ipc container:%s: non-shareable IPC (hint: use --ipc shareable for the donor container): %w", other.Name, ErrInvalid)
		}
	}
	if pod != nil {
	} else if o.UTSMode, err = e.namespaceMode(ctx, "--uts", o.UTSMode, "host"); err != nil {
		return nil, err
	}
	if o.UTSMode == "host" && o.Hostname != "" {
		return nil, fmt.Errorf("conflicting options: --hostname and --uts host: %w", ErrInvalid)
	}
	if o.CgroupnsMode, err = e.namespaceMode(ctx, "--cgroupns", o.CgroupnsMode, "private", "host"); err != nil {
		return nil, err
	}
	if o.CgroupnsMode == "" {
		o.CgroupnsMode = "private"
	}
	idSize, explicit, err := usernsMode(o, isolation, e.driver.def.Name())
	if err != nil {
		return nil, err
	}
	if o.CgroupParent != "" && (strings.Contains(o.CgroupParent, "..") || strings.ContainsAny(o.CgroupParent, "\x00\n")) {
		return nil, fmt.Errorf("--cgroup-parent %q: not a cgroup path: %w", o.CgroupParent, ErrInvalid)
	}
	exposed, err := ParseExpose(o.Expose)
	if err != nil {
		return nil, err
	}
	var inherited []MountPoint
	for _, vf := range o.VolumesFrom {
		name, mode, _ := strings.Cut(vf, ":")
		if mode != "" && mode != "ro" && mode != "rw" {
			return nil, fmt.Errorf("--volumes-from %q: the mode must be ro or rw: %w", vf, ErrInvalid)
		}
		other, err := e.get(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("--volumes-from %s: %w", vf, err)
		}
		for _, m := range other.Mounts {
			switch mode {
			case "ro":
				m.RW = false
			case "rw":
				m.RW = true
			}
			inherited = slices.DeleteFunc(inherited, func(x MountPoint) bool { return x.Destination == m.Destination })
			inherited = append(inherited, m)
		}
	}
	recs, err := e.images.Get(ctx, o.Image)
	if err != nil {
		return nil, fmt.Errorf("%w (pull it first: berth pull %s)", err, o.Image)
	}
	rec := recs[0]
	img, err := e.images.Config(rec)
	if err != nil {
		return nil, err
	}
	health, err := mergeHealth(imageHealthcheck(e.images, rec), o)
	if err != nil {
		return nil, err
	}
	id := newID()
	name := strings.TrimPrefix(o.Name, "/")
	if o.LogMaxSize == 0 {
		o.LogMaxSize = DefaultLogMaxSize
	}
	if o.LogMaxFiles == 0 {
		o.LogMaxFiles = DefaultLogMaxFiles
	}
	logDriver, err := checkLogDriver(o)
	if err != nil {
		return nil, err
	}
	if mode := o.NetworkMode; isolation != e.driver.def.Name() && (mode == "host" || strings.HasPrefix(mode, "container:")) {
		// A VM's network is its own devices, wired to a namespace of
		// its own: sharing the host's or another container's would take
		// that namespace's traffic from whatever else uses it.
		return nil, fmt.Errorf("--network %s: a %s-isolated container has a network namespace of its own; use a bridge network or none: %w", mode, isolation, ErrInvalid)
	}
	var nets []NetworkRequest
	switch mode := o.NetworkMode; {
	case mode == "" || mode == "default" || mode == "bridge":
		o.NetworkMode = "bridge"
		nets = []NetworkRequest{{Name: network.DefaultName, IP: o.IP, MAC: o.MAC, Aliases: o.Aliases}}
	case mode == "none" || mode == "host" || pod != nil:
	case strings.HasPrefix(mode, "container:"):
		other, err := e.get(ctx, strings.TrimPrefix(mode, "container:"))
		if err != nil {
			return nil, fmt.Errorf("--network %s: %w", mode, err)
		}
		if d, err := e.driver.named(other.HostConfig.Isolation); err == nil && d != e.driver.def {
			// Its namespace's interfaces are wired to its VM: nothing
			// else there would see a frame.
			return nil, fmt.Errorf("--network %s: %s runs in a %s, whose network namespace is its VM's alone: %w", mode, other.Name, d.Name(), ErrInvalid)
		}
		o.NetworkMode = "container:" + other.ID
	default:
		recorded, req, err := e.namedNetwork(ctx, "--network", mode, NetworkRequest{IP: o.IP, MAC: o.MAC, Aliases: o.Aliases})
		if err != nil {
			return nil, err
		}
		o.NetworkMode, nets = recorded, []NetworkRequest{req}
	}
	if len(nets) == 0 && (o.IP != "" || o.MAC != "" || len(o.Aliases) > 0 || len(o.Ports) > 0 || o.PublishAll || len(o.ExtraNetworks) > 0) {
		return nil, fmt.Errorf("--ip, --mac-address, --network-alias, -p/-P and more networks need a bridge network, not --network %s: %w", o.NetworkMode, ErrInvalid)
	}
	if len(o.ExtraNetworks) > 0 {
		if nets, err = e.extraNetworks(ctx, nets, o.ExtraNetworks); err != nil {
			return nil, err
		}
	}
	links, err := e.links(ctx, o.Links, nets)
	if err != nil {
		return nil, err
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
	hostname := o.Hostname
	if hostname == "" {
		hostname = ShortID(id)
	}
	if o.UTSMode == "host" {
		hostname, _ = os.Hostname()
	}
	if pod != nil {
		hostname = pod.Hostname
	}
	for k, v := range img.Config.ExposedPorts {
		exposed[k] = v
	}
	if len(exposed) == 0 {
		exposed = nil
	}
	c := &Container{
		ID: id, Name: name, Created: time.Now().UTC(), Pod: o.Pod, Namespace: e.opts.Namespace,
		Image: rec.ID(), ImageName: rec.Name, DiffIDs: rec.DiffIDs,
		LogPath: logPathOf(e.containerDir(id), id, logDriver, o.LogPath),
		Config: Config{
			Hostname: hostname, User: o.User, Env: o.Env, Cmd: o.Cmd, WorkingDir: o.WorkingDir,
			Image: o.Image, Labels: imageLabels(img.Config.Labels, o.Labels), Tty: o.Tty, OpenStdin: o.OpenStdin,
			StopSignal: o.StopSignal, StopTimeout: o.StopTimeout,
			ExposedPorts: exposed, Volumes: img.Config.Volumes, Domainname: o.Domainname,
		},
		HostConfig: HostConfig{
			Binds: o.Binds, Tmpfs: o.Tmpfs, NetworkMode: o.NetworkMode, RestartPolicy: o.Restart,
			AutoRemove: o.AutoRemove, ReadonlyRootfs: o.ReadOnly, Privileged: o.Privileged,
			CapAdd: o.CapAdd, CapDrop: o.CapDrop, SecurityOpt: o.SecurityOpt, Memory: o.Memory,
			NanoCPUs: int64(o.CPUs * 1e9), PidsLimit: o.PidsLimit, Ulimits: o.Ulimits, Init: o.Init,
			Isolation: isolation, LogMaxSize: o.LogMaxSize, LogMaxFiles: o.LogMaxFiles, LogTag: o.LogTag, LogDriver: logDriver,
			Networks: nets, PortBindings: o.Ports, PublishAllPorts: o.PublishAll, DNS: o.DNS, DNSSearch: o.DNSSearch,
			ExtraHosts: o.ExtraHosts, DNSOptions: o.DNSOptions, Links: links, ConsoleSize: o.ConsoleSize,
			CPUShares: o.Resources.CPUShares, CPUPeriod: o.Resources.CPUPeriod, CPUQuota: o.Resources.CPUQuota,
			CpusetCpus: o.Resources.CpusetCpus, CpusetMems: o.Resources.CpusetMems,
			MemorySwap: o.Resources.MemorySwap, MemoryReservation: o.Resources.MemoryReservation,
			OomKillDisable: o.Resources.OomKillDisable, BlkioWeight: o.Resources.BlkioWeight, ShmSize: o.ShmSize,
			Devices: o.Devices, DeviceCgroupRules: o.DeviceCgroupRules, Sysctls: o.Sysctls, GroupAdd: o.GroupAdd,
			PidMode: o.PidMode, IpcMode: o.IpcMode, UTSMode: o.UTSMode, CgroupnsMode: o.CgroupnsMode, UsernsMode: o.UsernsMode,
			CgroupParent: o.CgroupParent, VolumesFrom: o.VolumesFrom, Annotations: o.Annotations,
			SystemPathsUnconfined: slices.Contains(o.SecurityOpt, "systempaths=unconfined"),
		},
	}
	if o.OOMScoreAdj != nil {
		c.HostConfig.OomScoreAdj = *o.OOMScoreAdj
	}
	if o.Entrypoint != nil {
		c.Config.Entrypoint = *o.Entrypoint
	}
	if _, err := logAttrs(c); err != nil {
		return nil, err
	}
	if c.Config.StopSignal == "" {
		c.Config.StopSignal = img.Config.StopSignal
	}
	c.Config.Healthcheck = health
	c.State.setStatus(StatusCreating)
	c.State.OwnerPid = os.Getpid()
	c.State.OwnerStart = procStart(c.State.OwnerPid)
	if err := e.insert(ctx, c, o.Name == ""); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			e.destroy(context.WithoutCancel(ctx), c.ID)
			e.removeVolumesMadeFor(context.WithoutCancel(ctx), c.ID)
		}
	}()
	var uidMap, gidMap []specs.LinuxIDMapping
	if idSize > 0 || explicit != nil {
		m, added := explicit, ""
		if explicit != nil {
			err = e.reserveIDMap(ctx, id, explicit)
		} else {
			m, added, err = e.allocateIDMap(ctx, id, idSize)
		}
		if err != nil {
			return nil, err
		}
		if _, err := e.update(ctx, id, func(r *Container) error { r.IDMap = m; return nil }); err != nil {
			return nil, err
		}
		c.IDMap = m
		uidMap, gidMap = m.UIDs, m.GIDs
		if added != "" {
			c.Warnings = append(c.Warnings, addedSubIDsWarning(added))
		}
	}
	if pod != nil && pod.IDMap != nil {
		// The pod's user namespace, joined (below): its mapping for the
		// idmapped root and the files the engine writes.
		m := pod.IDMap
		if _, err := e.update(ctx, id, func(r *Container) error { r.IDMap = m; return nil }); err != nil {
			return nil, err
		}
		c.IDMap = m
		uidMap, gidMap = m.UIDs, m.GIDs
	}
	if err := os.MkdirAll(e.containerDir(id), 0o710); err != nil {
		return nil, err
	}
	if err := e.mountRootfs(c); err != nil {
		return nil, err
	}
	cgroupsPath := "/berth/" + id
	if o.CgroupParent != "" {
		cgroupsPath = path.Join(o.CgroupParent, id)
	}
	nsModes := map[specs.LinuxNamespaceType]string{}
	for t, mode := range map[specs.LinuxNamespaceType]string{specs.PIDNamespace: o.PidMode, specs.IPCNamespace: o.IpcMode,
		specs.UTSNamespace: o.UTSMode, specs.CgroupNamespace: o.CgroupnsMode} {
		switch {
		case mode == "host":
			nsModes[t] = "host"
		case strings.HasPrefix(mode, "container:"):
			// The path is the donor's at each start (joinNamespaces).
			nsModes[t] = mode
		}
	}
	shmSource := ""
	switch {
	case o.IpcMode == "host":
		shmSource = "/dev/shm"
	case o.IpcMode == "shareable":
		shmSource = e.shmDir(id) // mounted at each start
	case pod != nil:
		shmSource = e.podShm(pod.ID)
	case strings.HasPrefix(o.IpcMode, "container:"):
		other, err := e.get(ctx, strings.TrimPrefix(o.IpcMode, "container:"))
		if err != nil {
			return nil, err
		}
		shmSource = e.shmDir(other.ID)
		if other.HostConfig.IpcMode == "host" {
			shmSource = "/dev/shm"
		}
	}
	s, warns, err := spec.Generate(img, e.rootfs(id), spec.Options{
		Args: o.Cmd, Entrypoint: o.Entrypoint, Env: o.Env, User: o.User, WorkingDir: o.WorkingDir,
		Hostname: hostname, Tty: o.Tty, ReadOnly: o.ReadOnly, Privileged: o.Privileged,
		CapAdd: o.CapAdd, CapDrop: o.CapDrop, NoNewPrivileges: hasNoNewPrivileges(o.SecurityOpt),
		Ulimits: o.Ulimits, Memory: o.Memory, CPUs: o.CPUs, PidsLimit: o.PidsLimit,
		Tmpfs: o.Tmpfs, Labels: o.Labels, NetworkMode: specNetworkMode(o.NetworkMode), Seccomp: seccompOption(o.SecurityOpt),
		CgroupsPath: cgroupsPath,
		LookupEnv:   func(string) (string, bool) { return "", false },
		Resources:   o.Resources, OOMScoreAdj: o.OOMScoreAdj, ShmSize: o.ShmSize,
		Devices: o.Devices, DeviceCgroupRules: o.DeviceCgroupRules, Sysctls: o.Sysctls, GroupAdd: o.GroupAdd,
		Namespaces: nsModes, ShmSource: shmSource, NoShm: o.IpcMode == "none", Domainname: o.Domainname,
		SystemPathsUnconfined: c.HostConfig.SystemPathsUnconfined, Annotations: o.Annotations,
		MaskedPaths: o.MaskedPaths, ReadonlyPaths: o.ReadonlyPaths, StrictGroups: o.StrictGroups,
		UIDMappings: uidMap, GIDMappings: gidMap,
	})
	if err == nil && pod != nil {
		// Network, IPC and UTS of the pod's pins (setNetworkNamespace
		// points the network one); the UTS one has the pod's hostname.
		ipc, uts, pid, user := e.podNamespacePaths(pod.ID)
		if pod.IDMap != nil {
			// Joined, not made: the runtime joins the namespaces the
			// host owns first, then this one (nsexec's join_all).
			s.Linux.UIDMappings, s.Linux.GIDMappings = nil, nil
		}
		for i, n := range s.Linux.Namespaces {
			switch {
			case n.Type == specs.UserNamespace && pod.IDMap != nil:
				s.Linux.Namespaces[i].Path = user
			case n.Type == specs.PIDNamespace && pod.SharePID:
				s.Linux.Namespaces[i].Path = pid
			case n.Type == specs.IPCNamespace && o.IpcMode != "host":
				s.Linux.Namespaces[i].Path = ipc
			case n.Type == specs.UTSNamespace && o.UTSMode != "host":
				s.Linux.Namespaces[i].Path = uts
				s.Hostname = ""
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrInvalid)
	}
	if c.IDMap != nil && ownsNetns(c) {
		// Written by the engine into the network namespace it makes
		// (netSysctlsOutside): the container's root cannot.
		for k := range s.Linux.Sysctl {
			if strings.HasPrefix(k, "net.") {
				delete(s.Linux.Sysctl, k)
			}
		}
	}
	if err := e.setNetworkNamespace(ctx, s, c); err != nil {
		return nil, err
	}
	// The volumes are resolved (made, or found) and their use recorded
	// in one step under the volumes lock: a volume rm or prune either
	// comes first (and the volume is made afresh) or sees it in use.
	var mps []MountPoint
	if err := e.withVolumes(ctx, func() error {
		var err error
		if mps, err = e.resolveMounts(ctx, c, inherited, o.Binds, o.MountExtras, img.Config.Volumes); err != nil {
			return err
		}
		stopAtForTest("volumes-resolved")
		_, err = e.update(ctx, id, func(r *Container) error { r.Mounts = mps; return nil })
		return err
	}); err != nil {
		return nil, err
	}
	if len(o.ImageMounts) > 0 {
		ims, err := e.resolveImageMounts(ctx, c, o.ImageMounts)
		if err != nil {
			return nil, err
		}
		mps = append(mps, ims...)
		if _, err := e.update(ctx, id, func(r *Container) error { r.Mounts = mps; return nil }); err != nil {
			return nil, err
		}
	}
	c.Mounts = mps
	for _, m := range mps {
		if m.Type == "volume" && !m.NoCopy && !e.volumeHasOptions(ctx, m.Name) {
			if err := copyUp(e.rootfs(id), m, c.IDMap); err != nil {
				return nil, fmt.Errorf("volume %s: copy the image's %s into it: %w", m.Name, m.Destination, err)
			}
		}
		opts := []string{"rbind", "rprivate", "ro"}
		if m.NonRecursive {
			opts[0] = "bind"
		}
		if m.ReadOnlyRecursive {
			opts = append(opts, "rro")
		}
		if m.Propagation != "" {
			opts[1] = m.Propagation
		}
		if m.RW {
			opts[2] = "rw"
		}
		if c.IDMap != nil && m.Type == "volume" && !e.volumeIsHostBind(ctx, m.Name) {
			// A volume is berth's data: stored with container IDs and
			// seen through the container's mapping, so that any
			// container (of any block, or none) can use it.
			opts = append(opts, map[bool]string{true: "idmap", false: "ridmap"}[m.NonRecursive])
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
		// As docker: a shared bind needs the container's / shared, so
		// that it stays a peer of the host's mount (the runtime makes /
		// rslave otherwise); rslave is the runtime's default already.
		if m.Propagation == "shared" || m.Propagation == "rshared" {
			s.Linux.RootfsPropagation = "rshared"
		}
	}
	if o.Init {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("--init: find the berth binary: %w", err)
		}
		s.Process.Args = append([]string{tinit.Path, "--"}, s.Process.Args...)
		s.Mounts = append(s.Mounts, specs.Mount{Destination: tinit.Path, Type: "bind", Source: exe, Options: []string{"bind", "ro", "nosuid", "nodev"}})
	}
	etc, err := e.writeEtcFiles(ctx, c)
	if err != nil {
		return nil, err
	}
	s.Mounts = append(s.Mounts, etc...)
	for _, w := range warns {
		// docker's default nofile clamped to the host's hard limit is
		// this machine's normal case, not news at every run.
		if w.Topic != spec.TopicDefaultUlimit && w.Topic != "volume" {
			c.Warnings = append(c.Warnings, w.Message)
		}
	}
	data, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(e.containerDir(id), "config.json"), data, 0o600); err != nil {
		return nil, err
	}
	final, err := e.update(ctx, id, func(r *Container) error {
		r.Path, r.Args = s.Process.Args[0], s.Process.Args[1:]
		if o.Init {
			r.Path, r.Args = s.Process.Args[2], s.Process.Args[3:]
		}
		r.Config.Env = s.Process.Env
		r.Config.WorkingDir = s.Process.Cwd
		r.Warnings = c.Warnings
		r.Mounts = c.Mounts
		// What the spec has, after docker's defaults and the host's clamps.
		if m := s.Linux.Resources.Memory; m != nil && m.Swap != nil {
			r.HostConfig.MemorySwap = *m.Swap
		}
		if adj := s.Process.OOMScoreAdj; adj != nil {
			r.HostConfig.OomScoreAdj = *adj
		}
		r.State.setStatus(StatusCreated)
		r.State.OwnerPid, r.State.OwnerStart = 0, 0
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.emit(final, "create", nil)
	return final, nil
}

// links parses --link values, NAME[:ALIAS], each naming a container
// that exists now. Links are answered by the name server, so the
// container must be on a user-defined network: docker's links on the
// default bridge (/etc/hosts lines and environment variables, fixed at
// start) are not berth's.
func (e *Engine) links(ctx context.Context, values []string, nets []NetworkRequest) ([]Link, error) {
	if len(values) == 0 {
		return nil, nil
	}
	if !slices.ContainsFunc(nets, func(n NetworkRequest) bool { return network.Canonical(n.Name) != network.DefaultName }) {
		return nil, fmt.Errorf("--link %s: berth resolves links on user-defined networks only (docker's default-bridge links are legacy): put the containers on a network of their own (berth network create): %w", values[0], ErrInvalid)
	}
	var out []Link
	for _, v := range values {
		name, alias, _ := strings.Cut(v, ":")
		name = strings.TrimPrefix(name, "/")
		if alias == "" {
			alias = name
		}
		if name == "" || !validName.MatchString(alias) {
			return nil, fmt.Errorf("--link %q: use NAME[:ALIAS]: %w", v, ErrInvalid)
		}
		target, err := e.get(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			// Invalid, not not-found: a docker CLI takes a create's 404
			// for a missing image and pulls.
			return nil, fmt.Errorf("--link %s: could not get container for %s: no such container: %w", v, name, ErrInvalid)
		}
		if err != nil {
			return nil, fmt.Errorf("--link %s: %w", v, err)
		}
		out = append(out, Link{Name: target.Name, Alias: alias})
	}
	return out, nil
}

// extraNetworks appends the more networks a container is created on to
// nets, each by its canonical name, once.
func (e *Engine) extraNetworks(ctx context.Context, nets, more []NetworkRequest) ([]NetworkRequest, error) {
	m, err := e.networks()
	if err != nil {
		return nil, err
	}
	for _, req := range more {
		cfg, err := m.Get(ctx, req.Name)
		if err != nil {
			return nil, fmt.Errorf("network %s: %w", req.Name, err)
		}
		if slices.ContainsFunc(nets, func(n NetworkRequest) bool { return network.Canonical(n.Name) == cfg.Name }) {
			return nil, fmt.Errorf("network %s is named twice: %w", cfg.Name, ErrInvalid)
		}
		req.Name = cfg.Name
		nets = append(nets, req)
	}
	return nets, nil
}

func specNetworkMode(mode string) string {
	if mode == "host" {
		return "host"
	}
	return "none"
}

// setNetworkNamespace points the spec's network namespace at the pinned
// one the container will have (or another container's).
func (e *Engine) setNetworkNamespace(ctx context.Context, s *specs.Spec, c *Container) error {
	path := ""
	switch mode := c.HostConfig.NetworkMode; {
	case mode == "host":
		return nil
	case strings.HasPrefix(mode, podModePrefix):
		path = e.netnsPath(strings.TrimPrefix(mode, podModePrefix))
	case strings.HasPrefix(mode, "container:"):
		other, err := e.get(ctx, strings.TrimPrefix(mode, "container:"))
		if err != nil {
			return err
		}
		if !ownsNetns(other) {
			// The other one shares the host's (or a third's): so does this.
			if other.HostConfig.NetworkMode == "host" {
				s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
				return nil
			}
			return fmt.Errorf("--network %s: that container shares another's network namespace; name the owner: %w", mode, ErrInvalid)
		}
		path = e.netnsPath(other.ID)
	default:
		path = e.netnsPath(c.ID)
	}
	for i := range s.Linux.Namespaces {
		if s.Linux.Namespaces[i].Type == specs.NetworkNamespace {
			s.Linux.Namespaces[i].Path = path
		}
	}
	return nil
}

// seccompOption is --security-opt seccomp=...'s value ("" for the
// default profile).
func seccompOption(opts []string) string {
	v := ""
	for _, o := range opts {
		if rest, ok := strings.CutPrefix(o, "seccomp="); ok {
			v = rest
		} else if rest, ok := strings.CutPrefix(o, "seccomp:"); ok {
			v = rest
		}
	}
	return v
}

// noNewPrivValue is the value of "no-new-privileges:BOOL" or "=BOOL"
// ("true" or "false"), or "" for anything else.
func noNewPrivValue(o string) string {
	for _, sep := range []string{":", "="} {
		if v, ok := strings.CutPrefix(o, "no-new-privileges"+sep); ok {
			if b, err := strconv.ParseBool(v); err == nil {
				return strconv.FormatBool(b)
			}
		}
	}
	return ""
}

// hasNoNewPrivileges: the last no-new-privileges option wins, as docker's.
func hasNoNewPrivileges(opts []string) bool {
	on := false
	for _, o := range opts {
		switch {
		case o == "no-new-privileges":
			on = true
		case noNewPrivValue(o) != "":
			on = noNewPrivValue(o) == "true"
		}
	}
	return on
}

// insert stores a new record; with a generated name it retries on a
// collision.
func (e *Engine) insert(ctx context.Context, c *Container, generated bool) error {
	for try := 0; ; try++ {
		if generated {
			c.Name = randomName(try)
		}
		data, err := encode(c)
		if err != nil {
			return err
		}
		err = e.db.Insert(ctx, store.Row{ID: c.ID, Name: c.Name, ImageID: c.Image, Data: data})
		if err == nil || !generated || !errors.Is(err, store.ErrNameInUse) || try > 20 {
			return err
		}
	}
}

// writeEtcFiles writes the container's /etc/hosts, /etc/hostname and
// /etc/resolv.conf and returns their bind mounts.
func (e *Engine) writeEtcFiles(ctx context.Context, c *Container) ([]specs.Mount, error) {
	if c.Pod != "" {
		// The pod's, shared by its containers.
		var mounts []specs.Mount
		for _, n := range []string{"hosts", "hostname", "resolv.conf"} {
			mounts = append(mounts, specs.Mount{Destination: "/etc/" + n, Type: "bind", Source: filepath.Join(e.podDir(c.Pod), n), Options: []string{"rbind", "rprivate"}})
		}
		return mounts, nil
	}
	dir := e.containerDir(c.ID)
	// The same files start rewrites once the container has addresses
	// (network.go); until then they hold no network's entries.
	files := map[string][]byte{
		"hosts":       []byte(hostsFile(c)),
		"hostname":    []byte(c.Config.Hostname + "\n"),
		"resolv.conf": resolvConf(c),
	}
	var mounts []specs.Mount
	for _, n := range []string{"hosts", "hostname", "resolv.conf"} {
		p := filepath.Join(dir, n)
		if err := writeFileAtomic(p, files[n], 0o644); err != nil {
			return nil, err
		}
		if c.IDMap != nil {
			// The container's root may edit them, as anywhere else
			// (rewrites keep the file, and so its owner).
			uid, gid := c.IDMap.Root()
			if err := os.Chown(p, int(uid), int(gid)); err != nil {
				return nil, err
			}
		}
		mounts = append(mounts, specs.Mount{Destination: "/etc/" + n, Type: "bind", Source: p, Options: []string{"rbind", "rprivate"}})
	}
	return mounts, nil
}

// filterResolv drops loopback nameservers: inside the container's network
// namespace they are not the host's resolver.
func filterResolv(data []byte) []byte {
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "nameserver" && (strings.HasPrefix(f[1], "127.") || f[1] == "::1") {
			continue
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, "\n"))
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return writeFileAtomicSync(path, data, mode, false)
}

// writeFileAtomicSync is writeFileAtomic; with sync, the file is synced
// before the rename and its directory after it (what must survive a
// host's crash: a deferred DEL's journal).
func writeFileAtomicSync(path string, data []byte, mode os.FileMode, sync bool) error {
	f, err := writeAtomic(path, data, mode, sync, false)
	if f != nil {
		f.Close()
	}
	return err
}

// writeFileAtomicLocked is writeFileAtomicSync with sync, mode 0600, that
// returns the file open and flocked (LOCK_EX), the lock taken before the
// file has its name: a warm network namespace's journal, held while its
// engine holds the namespace.
func writeFileAtomicLocked(path string, data []byte) (*os.File, error) {
	return writeAtomic(path, data, 0o600, true, true)
}

func writeAtomic(path string, data []byte, mode os.FileMode, sync, lock bool) (*os.File, error) {
	tmp := path + ".tmp"
	flags := os.O_WRONLY
	if lock {
		flags = os.O_RDWR // the holder may read it back under its lock
	}
	f, err := os.OpenFile(tmp, flags|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return nil, err
	}
	if lock {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if !lock {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		f = nil
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		os.Remove(tmp)
		return nil, err
	}
	if sync {
		dir, err := os.Open(filepath.Dir(path))
		if err == nil {
			err = dir.Sync()
			dir.Close()
		}
		if err != nil {
			if f != nil {
				f.Close()
			}
			return nil, err
		}
	}
	return f, nil
}

// mountRootfs mounts the container's overlay at its rootfs directory
// unless it is mounted already.
func (e *Engine) mountRootfs(c *Container) error {
	target := e.rootfs(c.ID)
	if mounted(target) {
		return nil
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return err
	}
	if _, err := e.snapshots.ActiveDir(c.ID); err != nil {
		return err
	}
	if _, err := e.snapshots.Prepare(c.ID); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if c.IDMap != nil {
		return e.snapshots.MountOverlayMapped(c.ID, c.DiffIDs, target, c.IDMap.UIDs, c.IDMap.GIDs)
	}
	return e.snapshots.MountOverlay(c.ID, c.DiffIDs, target)
}

// mounted reports whether p is a mount point (a different device from its
// parent's).
func mounted(p string) bool {
	var st, pst unix.Stat_t
	if unix.Lstat(p, &st) != nil || unix.Lstat(filepath.Dir(p), &pst) != nil {
		return false
	}
	return st.Dev != pst.Dev
}

func unmountRootfs(p string) {
	for mounted(p) {
		if unix.Unmount(p, unix.MNT_DETACH) != nil {
			return
		}
	}
}

// imageLabels are a container's labels as docker makes them: the image's,
// with the container's own over them.
func imageLabels(image, own map[string]string) map[string]string {
	if len(image) == 0 {
		return own
	}
	out := make(map[string]string, len(image)+len(own))
	for k, v := range image {
		out[k] = v
	}
	for k, v := range own {
		out[k] = v
	}
	return out
}

// checkLSMOpt takes the --security-opt label= and apparmor= values that
// mean "unconfined" (label=disable, apparmor=unconfined: what berth does)
// and refuses the others by name rather than run unconfined silently:
// berth cannot apply SELinux labels or AppArmor profiles.
func checkLSMOpt(so string) error {
	if v, ok := strings.CutPrefix(so, "apparmor="); ok {
		switch {
		case v == "unconfined":
			return nil
		case !apparmorEnabled():
			return fmt.Errorf("--security-opt %q: this host has no AppArmor: drop the option (or use apparmor=unconfined): %w", so, ErrInvalid)
		default:
			return fmt.Errorf("--security-opt %q: berth cannot apply AppArmor profiles yet: drop the option to run unconfined, or use apparmor=unconfined: %w", so, ErrInvalid)
		}
	}
	v := so[len("label="):]
	switch {
	case v == "disable":
		return nil
	case !selinuxEnabled():
		return fmt.Errorf("--security-opt %q: this host has no SELinux: drop the option (or use label=disable): %w", so, ErrInvalid)
	default:
		return fmt.Errorf("--security-opt %q: berth cannot apply SELinux labels yet: drop the option, or use label=disable: %w", so, ErrInvalid)
	}
}

// apparmorEnabled says whether the host runs AppArmor.
func apparmorEnabled() bool {
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err == nil {
		return true
	}
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.HasPrefix(string(b), "Y")
}
