package spec

import specs "github.com/opencontainers/runtime-spec/specs-go"

// Options are the settings `docker run` flags control.
type Options struct {
	// Args overrides the image's Cmd when non-empty.
	Args []string
	// Entrypoint overrides the image's Entrypoint when non-nil; a pointer
	// to an empty slice means no entrypoint (`--entrypoint ""`). Either way
	// the image's Cmd is then not used.
	Entrypoint *[]string
	// Env entries are KEY=VALUE, or KEY alone to take the value from
	// LookupEnv; a KEY that LookupEnv does not know removes KEY.
	Env []string
	// LookupEnv resolves bare KEY entries of Env (default os.LookupEnv).
	LookupEnv func(key string) (string, bool)
	// User is "", "name", "uid", "name:group", "uid:gid" (groups by name
	// or number). Empty means the image's User, then root.
	User string
	// WorkingDir overrides the image's WorkingDir; must be absolute.
	WorkingDir string
	// Hostname of the container (callers usually pass the short ID).
	Hostname   string
	Tty        bool
	ReadOnly   bool
	Privileged bool
	// CapAdd and CapDrop hold capability names with or without CAP_, any
	// case, or ALL.
	CapAdd, CapDrop []string
	NoNewPrivileges bool
	// Seccomp is `--security-opt seccomp=`: "" (or "builtin") for the
	// default profile, equivalent to docker's; "unconfined" for no
	// filter; anything else is the path of a profile file in docker's
	// JSON format, resolved against the container's bounding
	// capabilities and the host's architecture and kernel. Privileged
	// containers get no filter whatever it says.
	Seccomp string
	// Ulimits are "name=soft[:hard]" such as "nofile=1024:2048" or
	// "nproc=512"; -1 or "unlimited" means no limit.
	Ulimits []string
	// Memory is the memory limit in bytes (0: none).
	Memory int64
	// CPUs is the number of CPUs of quota (0: none).
	CPUs float64
	// PidsLimit is the maximum number of tasks (0: none, -1: unlimited).
	PidsLimit int64
	// Tmpfs entries are "/dest" or "/dest:opt,opt".
	Tmpfs []string
	Binds []Bind
	// Labels become annotations, over the image's labels.
	Labels map[string]string
	// NetworkMode is "none" (or ""), a new empty network namespace, or
	// "host", the host's.
	NetworkMode string
	CgroupsPath string
	// Resources are the other cgroup settings (--cpu-shares, --cpuset-*,
	// --memory-swap, ...); OOMScoreAdj is --oom-score-adj (nil: inherit).
	Resources   Resources
	OOMScoreAdj *int
	// ShmSize is /dev/shm's size in bytes (0: docker's 64 MiB).
	ShmSize int64
	// Devices are --device values, HOST[:CONTAINER[:PERMS]];
	// DeviceCgroupRules --device-cgroup-rule values.
	Devices           []string
	DeviceCgroupRules []string
	// Sysctls are --sysctl settings (namespaced ones only).
	Sysctls map[string]string
	// GroupAdd are supplementary groups (names in the image's /etc/group,
	// or numbers) added to the user's.
	GroupAdd []string
	// Namespaces maps the PID, IPC, UTS and cgroup namespaces to "" (a
	// new one), "host" (the host's) or the path of one to join.
	Namespaces map[specs.LinuxNamespaceType]string
	// ShmSource, when set, is bind-mounted at /dev/shm (a shared IPC
	// namespace's); NoShm leaves /dev/shm unmounted (--ipc none).
	ShmSource string
	NoShm     bool
	// Domainname is the NIS domain name (--domainname).
	Domainname string
	// SystemPathsUnconfined drops the masked and read-only paths
	// (--security-opt systempaths=unconfined).
	SystemPathsUnconfined bool
	// MaskedPaths and ReadonlyPaths, when not nil, replace the default
	// lists of an unprivileged container (the CRI's security context
	// gives its own).
	MaskedPaths, ReadonlyPaths []string
	// StrictGroups: the process's supplementary groups are GroupAdd's
	// alone, not also the user's in the image's /etc/group.
	StrictGroups bool
	// Annotations are OCI annotations (--annotation), over the labels.
	Annotations map[string]string
	// UIDMappings and GIDMappings, when set, give the container a user
	// namespace of its own with them (--userns=auto): container ID ->
	// host ID. The process's user and groups must be mapped.
	UIDMappings, GIDMappings []specs.LinuxIDMapping
	// Host answers questions about the host's cgroups (nil: this host).
	Host Host
	// HostRlimit reports the host's limits of an RLIMIT_* resource number
	// (default unix.Getrlimit).
	HostRlimit func(resource int) (cur, max uint64, err error)
	// HostLastCap reports the highest capability number the host kernel
	// knows (default: /proc/sys/kernel/cap_last_cap).
	HostLastCap func() (int, error)
	// HostBounding reports berth's own capability bounding set (a bit
	// per capability number; default: /proc/self/status's CapBnd): no
	// process berth starts can hold a capability outside it.
	HostBounding func() (uint64, error)
}

// Bind is a bind mount of a host path (-v /src:/dst[:ro]).
type Bind struct {
	Source      string
	Destination string
	ReadOnly    bool
}

// TopicDefaultUlimit is the topic of a warning about one of docker's
// default rlimits clamped to the host's: worth recording, not worth
// printing at every run.
const TopicDefaultUlimit = "ulimit-default"

// TopicBoundingCaps: capabilities --privileged or --cap-add ALL would
// give that berth itself does not hold.
const TopicBoundingCaps = "capabilities"

// Warning is something Generate granted differently from what was asked,
// or ignored.
type Warning struct {
	// Topic is what the warning is about: "ulimit", "volume".
	Topic   string
	Message string
}

func (w Warning) String() string { return w.Message }
