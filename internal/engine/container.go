package engine

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Error categories; errors wrap one of these (or the store's).
var (
	ErrInvalidState = errors.New("invalid container state")
	ErrInvalid      = runtime.ErrInvalidArgument // "invalid argument", the drivers' too
)

// Status values, docker's.
const (
	StatusCreating   = "creating"
	StatusCreated    = "created"
	StatusRunning    = "running"
	StatusPaused     = "paused"
	StatusRestarting = "restarting"
	StatusRemoving   = "removing"
	StatusExited     = "exited"
	StatusDead       = "dead"
)

// Container is a container's record, shaped like docker's inspect output
// so that `berth inspect` is the record itself.
type Container struct {
	ID              string          `json:"Id"`
	Name            string          `json:"Name"`
	Created         time.Time       `json:"Created"`
	Path            string          `json:"Path"`
	Args            []string        `json:"Args"`
	State           State           `json:"State"`
	Image           string          `json:"Image"` // the image ID
	ImageName       string          `json:"ImageName"`
	DiffIDs         []string        `json:"DiffIDs"`
	RestartCount    int             `json:"RestartCount"`
	LogPath         string          `json:"LogPath"`
	Mounts          []MountPoint    `json:"Mounts"`
	NetworkSettings NetworkSettings `json:"NetworkSettings"`
	Config          Config          `json:"Config"`
	HostConfig      HostConfig      `json:"HostConfig"`
	Warnings        []string        `json:"Warnings,omitempty"`
	// IDMap is the mapping of a container in a user namespace of its
	// own (--userns=auto, --uidmap/--gidmap), nil otherwise. The store's
	// table of reserved host IDs holds the same ranges (and frees them
	// with the record).
	IDMap *IDMap `json:"IDMap,omitempty"`
	// Pod is the ID of the pod whose namespaces the container joins
	// ("" for none).
	Pod string `json:"Pod,omitempty"`
	// Namespace is the store namespace the record lives in (the store's
	// column, not part of the JSON).
	Namespace string `json:"-"`
}

// IDMap is a container's mapping of its uids and gids onto host IDs.
type IDMap struct {
	UIDs []specs.LinuxIDMapping `json:"UIDs"`
	GIDs []specs.LinuxIDMapping `json:"GIDs"`
}

func toHost(m []specs.LinuxIDMapping, id uint32) (uint32, bool) {
	for _, e := range m {
		if id >= e.ContainerID && id-e.ContainerID < e.Size {
			return e.HostID + id - e.ContainerID, true
		}
	}
	return 0, false
}

func toContainer(m []specs.LinuxIDMapping, id uint32) uint32 {
	for _, e := range m {
		if id >= e.HostID && id-e.HostID < e.Size {
			return e.ContainerID + id - e.HostID
		}
	}
	return overflowID
}

// HostUID is the host uid of container uid id; ok is false when it is
// not mapped.
func (m *IDMap) HostUID(id uint32) (uint32, bool) { return toHost(m.UIDs, id) }

// HostGID is HostUID for gids.
func (m *IDMap) HostGID(id uint32) (uint32, bool) { return toHost(m.GIDs, id) }

// ContainerUID is the container uid host uid id is seen as: 65534 (the
// kernel's overflow uid, nobody) when it is not mapped.
func (m *IDMap) ContainerUID(id uint32) uint32 { return toContainer(m.UIDs, id) }

// ContainerGID is ContainerUID for gids.
func (m *IDMap) ContainerGID(id uint32) uint32 { return toContainer(m.GIDs, id) }

// Root is the host uid and gid of the container's root (every mapping
// has it: see parseIDMaps).
func (m *IDMap) Root() (uint32, uint32) {
	u, _ := m.HostUID(0)
	g, _ := m.HostGID(0)
	return u, g
}

// String is the mapping as --uidmap/--gidmap values.
func (m *IDMap) String() string {
	var out []string
	for _, side := range []struct {
		name string
		m    []specs.LinuxIDMapping
	}{{"uid", m.UIDs}, {"gid", m.GIDs}} {
		for _, e := range side.m {
			out = append(out, fmt.Sprintf("%s %d:%d:%d", side.name, e.ContainerID, e.HostID, e.Size))
		}
	}
	return strings.Join(out, ", ")
}

// overflowID is what an unmapped ID looks like in a user namespace
// (/proc/sys/kernel/overflowuid's default).
const overflowID = 65534

// State is the lifecycle part of a record.
type State struct {
	Status     string    `json:"Status"`
	Running    bool      `json:"Running"`
	Paused     bool      `json:"Paused"`
	Restarting bool      `json:"Restarting"`
	OOMKilled  bool      `json:"OOMKilled"`
	Dead       bool      `json:"Dead"`
	Pid        int       `json:"Pid"`
	ExitCode   int       `json:"ExitCode"`
	Error      string    `json:"Error"`
	StartedAt  time.Time `json:"StartedAt"`
	FinishedAt time.Time `json:"FinishedAt"`
	// Health is the healthcheck's state (docker's State.Health), nil
	// without a healthcheck.
	Health *Health `json:"Health,omitempty"`

	// The monitor supervising the container (pid and start time, so a
	// reused pid is not mistaken for it).
	MonitorPid   int    `json:"MonitorPid,omitempty"`
	MonitorStart uint64 `json:"MonitorStart,omitempty"`
	// The process creating or removing the container (Status creating or
	// removing): if it is gone, the next command finishes its work.
	OwnerPid   int    `json:"OwnerPid,omitempty"`
	OwnerStart uint64 `json:"OwnerStart,omitempty"`
	// StopRequested: stop, kill or rm asked for the exit, so the restart
	// policy does not apply (docker's "manually stopped").
	StopRequested bool `json:"StopRequested,omitempty"`
	// QuickExits counts consecutive runs shorter than 10 s, for the
	// restart back-off.
	QuickExits int `json:"QuickExits,omitempty"`
}

// Config is what the container runs (docker's Config).
type Config struct {
	Hostname     string              `json:"Hostname"`
	Domainname   string              `json:"Domainname,omitempty"`
	User         string              `json:"User"`
	Env          []string            `json:"Env"`
	Cmd          []string            `json:"Cmd"`
	Entrypoint   []string            `json:"Entrypoint"`
	WorkingDir   string              `json:"WorkingDir"`
	Image        string              `json:"Image"` // as the user named it
	Labels       map[string]string   `json:"Labels"`
	Tty          bool                `json:"Tty"`
	OpenStdin    bool                `json:"OpenStdin"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	StopTimeout  *int                `json:"StopTimeout,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Volumes      map[string]struct{} `json:"Volumes,omitempty"`
	Healthcheck  *HealthConfig       `json:"Healthcheck,omitempty"`
}

// HostConfig is how the host runs it (docker's HostConfig).
type HostConfig struct {
	Binds          []string      `json:"Binds,omitempty"`
	Mounts         []string      `json:"Mounts,omitempty"`
	Tmpfs          []string      `json:"Tmpfs,omitempty"`
	NetworkMode    string        `json:"NetworkMode"`
	RestartPolicy  RestartPolicy `json:"RestartPolicy"`
	AutoRemove     bool          `json:"AutoRemove"`
	ReadonlyRootfs bool          `json:"ReadonlyRootfs"`
	Privileged     bool          `json:"Privileged"`
	CapAdd         []string      `json:"CapAdd,omitempty"`
	CapDrop        []string      `json:"CapDrop,omitempty"`
	SecurityOpt    []string      `json:"SecurityOpt,omitempty"`
	Memory         int64         `json:"Memory"`
	NanoCPUs       int64         `json:"NanoCpus"`
	PidsLimit      int64         `json:"PidsLimit"`
	Ulimits        []string      `json:"Ulimits,omitempty"`
	Init           bool          `json:"Init"`
	Isolation      string        `json:"Isolation"`
	LogMaxSize     int64         `json:"LogMaxSize"`
	LogMaxFiles    int           `json:"LogMaxFiles"`
	// LogTag is --log-opt tag: a template of the tag each log line
	// carries in its attrs.
	LogTag string `json:"LogTag,omitempty"`
	// LogDriver is how the monitor writes the output: LogJSONFile ("",
	// docker's json-file), LogK8sFile (the CRI's format, podman's
	// k8s-file) or LogNone (not kept).
	LogDriver string `json:"LogDriver,omitempty"`
	// ConsoleSize is the terminal's height and width before any client
	// sizes it (docker's; zero: none).
	ConsoleSize [2]uint `json:"ConsoleSize,omitzero"`
	// Networks the container joins (NetworkMode bridge or a network's
	// name; connect adds more), in interface order: eth0, eth1, ...
	Networks        []NetworkRequest      `json:"Networks,omitempty"`
	PortBindings    []network.PortMapping `json:"PortBindings,omitempty"`
	PublishAllPorts bool                  `json:"PublishAllPorts"`
	DNS             []string              `json:"Dns,omitempty"`
	DNSSearch       []string              `json:"DnsSearch,omitempty"`
	ExtraHosts      []string              `json:"ExtraHosts,omitempty"`
	DNSOptions      []string              `json:"DnsOptions,omitempty"`
	Links           []Link                `json:"Links,omitempty"`
	// Resources beyond Memory, NanoCPUs and PidsLimit (docker's names).
	CPUShares         int64  `json:"CpuShares,omitempty"`
	CPUPeriod         int64  `json:"CpuPeriod,omitempty"`
	CPUQuota          int64  `json:"CpuQuota,omitempty"`
	CpusetCpus        string `json:"CpusetCpus,omitempty"`
	CpusetMems        string `json:"CpusetMems,omitempty"`
	MemorySwap        int64  `json:"MemorySwap,omitempty"`
	MemoryReservation int64  `json:"MemoryReservation,omitempty"`
	OomKillDisable    bool   `json:"OomKillDisable,omitempty"`
	OomScoreAdj       int    `json:"OomScoreAdj,omitempty"`
	BlkioWeight       uint16 `json:"BlkioWeight,omitempty"`
	ShmSize           int64  `json:"ShmSize,omitempty"`
	// Devices are --device values, HOST[:CONTAINER[:PERMS]].
	Devices           []string          `json:"Devices,omitempty"`
	DeviceCgroupRules []string          `json:"DeviceCgroupRules,omitempty"`
	Sysctls           map[string]string `json:"Sysctls,omitempty"`
	GroupAdd          []string          `json:"GroupAdd,omitempty"`
	// Namespace modes: "" (private), "host", "container:<ID>"; IpcMode
	// also "private", "shareable", "none"; CgroupnsMode "private", "host".
	PidMode      string `json:"PidMode,omitempty"`
	IpcMode      string `json:"IpcMode,omitempty"`
	UTSMode      string `json:"UTSMode,omitempty"`
	CgroupnsMode string `json:"CgroupnsMode,omitempty"`
	UsernsMode   string `json:"UsernsMode,omitempty"`
	CgroupParent string `json:"CgroupParent,omitempty"`
	// VolumesFrom are the --volumes-from values, CONTAINER[:ro|rw].
	VolumesFrom []string          `json:"VolumesFrom,omitempty"`
	Annotations map[string]string `json:"Annotations,omitempty"`
	// SystemPathsUnconfined: --security-opt systempaths=unconfined.
	SystemPathsUnconfined bool `json:"SystemPathsUnconfined,omitempty"`
}

// Link is a legacy link (--link NAME:ALIAS, compose's links:): on the
// container's user-defined networks, ALIAS resolves to the container
// named NAME, for this container only.
type Link struct {
	Name  string `json:"Name"`
	Alias string `json:"Alias"`
}

// NetworkRequest is how a container asked to join a network.
type NetworkRequest struct {
	Name    string   `json:"Name"`
	IP      string   `json:"IPAddress,omitempty"`
	MAC     string   `json:"MacAddress,omitempty"`
	Aliases []string `json:"Aliases,omitempty"`
	// CNI: the network of a CNI configuration file (a Kubernetes node's
	// pod network), not one of berth's; Name is its network's name.
	CNI *network.CNIRef `json:"CNI,omitempty"`
}

// NetworkSettings is what the container has while it runs.
type NetworkSettings struct {
	// SandboxKey is the pinned network namespace.
	SandboxKey string             `json:"SandboxKey,omitempty"`
	Endpoints  []network.Endpoint `json:"Networks,omitempty"`
}

// Ports are the published ports while it runs.
//
// A port without a host address on a dual-stack endpoint is listed twice,
// on 0.0.0.0 and on ::, as it is bound (and as docker lists it).
func (n NetworkSettings) Ports() []network.PortMapping {
	var out []network.PortMapping
	for _, ep := range n.Endpoints {
		for _, p := range ep.Ports {
			if p.HostIP == "" && ep.IPv6 != "" {
				v4, v6 := p, p
				v4.HostIP, v6.HostIP = "0.0.0.0", "::"
				out = append(out, v4, v6)
				continue
			}
			out = append(out, p)
		}
	}
	return out
}

// RestartPolicy is docker's: no, on-failure[:N], always, unless-stopped.
type RestartPolicy struct {
	Name              string `json:"Name"`
	MaximumRetryCount int    `json:"MaximumRetryCount"`
}

// ShortID is the 12-digit form of an ID.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// setStatus keeps the booleans in step with Status.
func (s *State) setStatus(st string) {
	s.Status = st
	s.Running = st == StatusRunning || st == StatusPaused || st == StatusRestarting
	s.Paused = st == StatusPaused
	s.Restarting = st == StatusRestarting
	s.Dead = st == StatusDead
}

// MountPoint is one of a container's bind or volume mounts (docker's
// inspect "Mounts").
type MountPoint struct {
	Type        string `json:"Type"` // bind or volume
	Name        string `json:"Name,omitempty"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	RW          bool   `json:"RW"`
	// Propagation is a bind's ([r]private, [r]shared, [r]slave); empty
	// is rprivate.
	Propagation string `json:"Propagation,omitempty"`
	// NoCopy: the image's files are not copied into a new volume.
	NoCopy bool `json:"NoCopy,omitempty"`
	// NonRecursive binds without the mounts below the source;
	// ReadOnlyRecursive makes those read-only too (--mount's
	// bind-recursive=disabled and =readonly).
	NonRecursive      bool `json:"NonRecursive,omitempty"`
	ReadOnlyRecursive bool `json:"ReadOnlyRecursive,omitempty"`
	// Subpath is the path inside the volume that is mounted
	// (volume-subpath); Source includes it.
	Subpath string `json:"Subpath,omitempty"`
	// Layers are an image mount's layers (Type "image"; Name is the
	// image's ID).
	Layers []string `json:"Layers,omitempty"`
}

// MountExtra is what a --mount says that a -v value cannot.
type MountExtra struct {
	// NonRecursive, ReadOnlyRecursive: bind-recursive=disabled, =readonly.
	NonRecursive, ReadOnlyRecursive bool
	// Subpath: volume-subpath, a path that exists in the volume.
	Subpath string
	// VolumeOptions: volume-opt, the local driver's options (type,
	// device, o) for a volume this creates.
	VolumeOptions map[string]string
}
