//go:build linux

package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/engine/spec"
	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/linux"
	"github.com/berth-dev/berth/internal/runtime/vm"
	"github.com/berth-dev/berth/internal/sigrelay"
	"github.com/berth-dev/berth/internal/timespec"
	"github.com/berth-dev/berth/internal/trace"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// RunMonitorChild is the entry point of a Go process the container
// monitor forked.
func RunMonitorChild() int {
	return engine.MonitorChild(func(root, state string) (*engine.Engine, error) {
		g := &globalOptions{root: root, state: state}
		return g.openEngine(false)
	})
}

func (g *globalOptions) openEngine(withRegistry bool) (*engine.Engine, error) {
	var s *image.Service
	var err error
	if withRegistry {
		s, err = g.images()
	} else {
		s, err = image.Open(image.Options{Root: g.root, InUse: g.inUse})
	}
	if err != nil {
		return nil, err
	}
	trace.Phase("images-opened")
	return engine.Open(engine.Options{Root: g.root, State: g.state, Images: s, Driver: linux.NewDriver(engine.RuntimeRoot(g.state)),
		Drivers: []runtime.Driver{g.vmDriver()}, Namespace: g.namespace})
}

// pruneVMLayers removes the VM driver's layer images whose layers are
// gone (after rmi and prune); a failure only warns.
func (g *globalOptions) pruneVMLayers(s *image.Service) {
	snaps := s.Snapshots()
	_, err := g.vmDriver().PruneLayerImages(func(d string) bool {
		ok, err := snaps.Exists(d)
		return ok || err != nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth: prune the VM layer images: %v\n", err)
	}
}

// pruneVMTemplates removes the VM driver's templates (system prune: a
// cache the next VM of each shape remakes); a failure only warns.
func (g *globalOptions) pruneVMTemplates() {
	if _, err := g.vmDriver().PruneTemplates(); err != nil {
		fmt.Fprintf(os.Stderr, "berth: prune the VM templates: %v\n", err)
	}
}

// vmDriver is the VM isolation: its caches (initramfs, layer images) on
// the root's storage, its VMs' state in the run directory.
func (g *globalOptions) vmDriver() *vm.Driver {
	return vm.NewDriver(filepath.Join(g.root, "vm"), filepath.Join(g.state, "vm"))
}

func (g *globalOptions) withEngine(run func(ctx context.Context, e *engine.Engine, args []string) error) func(*cobra.Command, []string) error {
	return func(_ *cobra.Command, args []string) error {
		e, err := g.openEngine(false)
		if err != nil {
			return err
		}
		defer e.Close()
		ctx, cancel := signalContext()
		defer cancel()
		return run(ctx, e, args)
	}
}

func addContainerCommands(root *cobra.Command, g *globalOptions) {
	containerCmd := &cobra.Command{Use: "container", Short: "Manage containers"}
	for _, parent := range []*cobra.Command{root, containerCmd} {
		parent.AddCommand(newRunCommand(g, false), newRunCommand(g, true), newStartCommand(g), newStopCommand(g),
			newKillCommand(g), newRestartCommand(g), newRmCommand(g), newPsCommand(g), newLogsCommand(g),
			newWaitCommand(g), newRenameCommand(g), newPauseCommand(g, true), newPauseCommand(g, false), newAttachCommand(g))
	}
	containerCmd.AddCommand(newContainerInspectCommand(g), newContainerPruneCommand(g))
	root.AddCommand(containerCmd, newTopInspectCommand(g))
	addContainerMoreCommands(root, containerCmd, g)
	addVolumeCommands(root, g)
	addNetworkCommands(root, g)
	addPodCommands(root, g)
	root.AddCommand(newHistoryCommand(g))
	for _, c := range root.Commands() {
		if c.Name() == "image" {
			c.AddCommand(newHistoryCommand(g))
		}
	}
}

// runFlags are create's and run's.
type runFlags struct {
	name, workdir, user, hostname, entrypoint, restart, stopSignal, isolation, network string
	memory, platform, pull                                                             string
	env, envFiles, volumes, mounts, tmpfs, capAdd, capDrop, securityOpt, ulimits       []string
	labels, logOpts, publish, dns, dnsSearch, addHosts, aliases                        []string
	logDriver                                                                          string
	pod                                                                                string
	networkSet                                                                         bool
	ip, mac                                                                            string
	healthCmd                                                                          string
	healthInterval, healthTimeout, healthStartPeriod                                   time.Duration
	healthRetries                                                                      int
	noHealthcheck                                                                      bool
	interactive, tty, rm, readOnly, privileged, init, publishAll                       bool
	cpus                                                                               float64
	pidsLimit                                                                          int64
	stopTimeout                                                                        int
	entrypointSet, stopTimeoutSet                                                      bool
	// Resources, devices, kernel settings, namespaces and the rest of
	// docker's run flags.
	cpuShares, cpuPeriod, cpuQuota                                     int64
	cpusetCpus, cpusetMems, memorySwap, memoryReservation, shmSize     string
	oomKillDisable                                                     bool
	oomScoreAdj                                                        int
	blkioWeight                                                        uint16
	devices, deviceCgroupRules, sysctls, groupAdd                      []string
	uidMaps, gidMaps                                                   []string
	pid, ipc, uts, cgroupns, cgroupParent, userns, cidfile, domainname string
	labelFiles, dnsOptions, volumesFrom, annotations, expose           []string
	oomScoreAdjSet                                                     bool
}

func (f *runFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.Bool("help", false, "help for "+cmd.Name())
	fl.StringVar(&f.name, "name", "", "name of the container")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable (KEY=VALUE, or KEY to take it from this environment)")
	fl.StringArrayVar(&f.envFiles, "env-file", nil, "read environment variables from a file")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fl.StringVarP(&f.user, "user", "u", "", "user[:group], by name or number")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "override the image's entrypoint")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "mount a host path or a volume: /host:/container[:OPTS], ./rel:/container, name:/container[:OPTS], /container (anonymous); OPTS: ro|rw, nocopy, [r]shared|[r]slave|[r]private")
	fl.StringArrayVar(&f.mounts, "mount", nil, "mount a bind, volume or tmpfs with docker's keys (readonly, bind-propagation, bind-recursive, volume-nocopy, volume-subpath, volume-opt, tmpfs-size, tmpfs-mode, consistency): type=bind|volume|tmpfs,source=SRC,target=DST[,KEY=VALUE...]")
	fl.BoolVar(&f.readOnly, "read-only", false, "mount the root filesystem read-only")
	fl.StringArrayVar(&f.tmpfs, "tmpfs", nil, "mount a tmpfs: /path[:options]")
	fl.StringVarP(&f.hostname, "hostname", "h", "", "container host name")
	fl.StringArrayVar(&f.capAdd, "cap-add", nil, "add a Linux capability")
	fl.StringArrayVar(&f.capDrop, "cap-drop", nil, "drop a Linux capability")
	fl.BoolVar(&f.privileged, "privileged", false, "give the container all capabilities and devices")
	fl.StringArrayVar(&f.securityOpt, "security-opt", nil, "seccomp=FILE|unconfined, no-new-privileges")
	fl.StringVarP(&f.memory, "memory", "m", "", "memory limit (e.g. 512m, 1g)")
	fl.Float64Var(&f.cpus, "cpus", 0, "number of CPUs")
	fl.Int64Var(&f.pidsLimit, "pids-limit", 0, "maximum number of processes (-1: unlimited)")
	fl.StringArrayVar(&f.ulimits, "ulimit", nil, "rlimit: name=soft[:hard]")
	fl.StringVar(&f.restart, "restart", "no", "restart policy: no, on-failure[:max-retries], always, unless-stopped")
	fl.StringVar(&f.stopSignal, "stop-signal", "", "signal that stops the container (default: the image's, else SIGTERM)")
	fl.StringVar(&f.healthCmd, "health-cmd", "", "command to run to check health (run by /bin/sh -c in the container)")
	fl.DurationVar(&f.healthInterval, "health-interval", 0, "time between health checks (default 30s)")
	fl.DurationVar(&f.healthTimeout, "health-timeout", 0, "time a health check may take before it is killed and counts as failed (default 30s)")
	fl.DurationVar(&f.healthStartPeriod, "health-start-period", 0, "time after start in which failed checks do not count")
	fl.IntVar(&f.healthRetries, "health-retries", 0, "failed checks in a row that make the container unhealthy (default 3)")
	fl.BoolVar(&f.noHealthcheck, "no-healthcheck", false, "disable the image's healthcheck")
	fl.IntVar(&f.stopTimeout, "stop-timeout", 10, "seconds to wait after the stop signal before SIGKILL")
	fl.BoolVar(&f.init, "init", false, "run an init inside the container that forwards signals and reaps processes")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "set a label: key=value")
	fl.StringVar(&f.isolation, "isolation", "default", "isolation: linux (namespaces; the default) or vm (a QEMU microVM per container)")
	fl.StringVar(&f.network, "network", "bridge", "network: bridge (the default network), none, host, container:NAME, or a network's name")
	fl.StringVar(&f.network, "net", "bridge", "same as --network")
	fl.MarkHidden("net")
	fl.StringVar(&f.ip, "ip", "", "IPv4 address on the network")
	fl.StringVar(&f.mac, "mac-address", "", "MAC address of the container's interface")
	fl.StringArrayVar(&f.dns, "dns", nil, "DNS server")
	fl.StringArrayVar(&f.dnsSearch, "dns-search", nil, "DNS search domain")
	fl.StringArrayVar(&f.addHosts, "add-host", nil, "add a name:ip line to /etc/hosts")
	fl.StringArrayVar(&f.aliases, "network-alias", nil, "another name for the container on its network")
	fl.StringArrayVar(&f.logOpts, "log-opt", nil, "log options: max-size=SIZE, max-file=N, tag=TEMPLATE ({{.Name}}, {{.ID}}, {{.ImageName}}, ...); path=FILE with k8s-file")
	fl.StringVar(&f.logDriver, "log-driver", "json-file", "how the output is kept: json-file, k8s-file (the CRI's format) or none")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a port: [ip:][hostPort:]containerPort[/tcp|udp]")
	fl.BoolVarP(&f.publishAll, "publish-all", "P", false, "publish every exposed port on a free host port")
	fl.StringVar(&f.platform, "platform", "", "platform of the image: a local image of another platform is refused (pull it for this one first, or --pull always)")
	fl.StringVar(&f.pull, "pull", "missing", "pull the image before creating: always, missing (when it is not here), never")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open")
	fl.BoolVarP(&f.tty, "tty", "t", false, "allocate a pseudo-terminal")
	fl.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	fl.Int64VarP(&f.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fl.StringVar(&f.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fl.StringVar(&f.cpusetMems, "cpuset-mems", "", "memory nodes in which to allow execution (0-3, 0,1)")
	fl.Int64Var(&f.cpuPeriod, "cpu-period", 0, "limit the CPU CFS (Completely Fair Scheduler) period, in microseconds")
	fl.Int64Var(&f.cpuQuota, "cpu-quota", 0, "limit the CPU CFS quota, in microseconds per period")
	fl.StringVar(&f.memorySwap, "memory-swap", "", "memory plus swap limit: a size, or -1 for unlimited swap (default: twice --memory)")
	fl.StringVar(&f.memoryReservation, "memory-reservation", "", "memory soft limit")
	fl.BoolVar(&f.oomKillDisable, "oom-kill-disable", false, "disable the OOM killer")
	fl.IntVar(&f.oomScoreAdj, "oom-score-adj", 0, "tune the host's OOM preferences (-1000 to 1000)")
	fl.Uint16Var(&f.blkioWeight, "blkio-weight", 0, "block IO (relative weight), between 10 and 1000, or 0 to disable")
	fl.StringVar(&f.shmSize, "shm-size", "", "size of /dev/shm (default 64m)")
	fl.StringArrayVar(&f.devices, "device", nil, "add a host device: HOST[:CONTAINER[:PERMS]]")
	fl.StringArrayVar(&f.deviceCgroupRules, "device-cgroup-rule", nil, "add a rule to the cgroup's allowed devices list ('c 1:3 rwm')")
	fl.StringArrayVar(&f.sysctls, "sysctl", nil, "set a namespaced kernel parameter: name=value")
	fl.StringArrayVar(&f.groupAdd, "group-add", nil, "add an additional group to join")
	fl.StringVar(&f.pid, "pid", "", "PID namespace: host, or container:NAME")
	fl.StringVar(&f.ipc, "ipc", "", "IPC mode: private (the default), shareable, none, host, or container:NAME")
	fl.StringVar(&f.uts, "uts", "", "UTS namespace: host")
	fl.StringVar(&f.cgroupns, "cgroupns", "", "cgroup namespace: private (the default) or host")
	fl.StringVar(&f.cgroupParent, "cgroup-parent", "", "parent cgroup of the container's (default /berth)")
	fl.StringVar(&f.userns, "userns", "", "user namespace: host (the host's, the default) or auto[:size=N] (its own, mapping root onto a free block of host IDs from /etc/subuid)")
	fl.StringArrayVar(&f.uidMaps, "uidmap", nil, "a user namespace of its own with this uid mapping, CONTAINER:HOST:SIZE (repeatable; root must be mapped; host IDs no other container holds)")
	fl.StringArrayVar(&f.gidMaps, "gidmap", nil, "its gid mapping, CONTAINER:HOST:SIZE (repeatable; default: the --uidmap values)")
	fl.StringVar(&f.cidfile, "cidfile", "", "write the container ID to the file")
	fl.StringVar(&f.domainname, "domainname", "", "container NIS domain name")
	fl.StringArrayVar(&f.labelFiles, "label-file", nil, "read labels from a file of key=value lines")
	fl.StringArrayVar(&f.dnsOptions, "dns-option", nil, "set a DNS option (resolv.conf options)")
	fl.StringArrayVar(&f.dnsOptions, "dns-opt", nil, "same as --dns-option")
	fl.MarkHidden("dns-opt")
	fl.StringArrayVar(&f.volumesFrom, "volumes-from", nil, "mount the volumes and binds of a container: NAME[:ro|rw]")
	fl.StringArrayVar(&f.annotations, "annotation", nil, "add an annotation to the container (passed through to the OCI runtime): key=value")
	fl.StringArrayVar(&f.expose, "expose", nil, "expose a port or a range of ports: PORT[/PROTO], FROM-TO[/PROTO]")
	fl.StringVar(&f.isolation, "runtime", "default", "same as --isolation (docker's spelling): linux or vm")
	fl.StringVar(&f.pod, "pod", "", "join a pod (berth pod create): its network, IPC and UTS namespaces, hostname and /etc files")
	cmd.PreRun = func(cmd *cobra.Command, _ []string) {
		f.entrypointSet = cmd.Flags().Changed("entrypoint")
		f.networkSet = cmd.Flags().Changed("network") || cmd.Flags().Changed("net")
		f.stopTimeoutSet = cmd.Flags().Changed("stop-timeout")
		f.oomScoreAdjSet = cmd.Flags().Changed("oom-score-adj")
	}
}

// options turns the flags into the engine's CreateOptions.
func (f *runFlags) options(args []string) (engine.CreateOptions, error) {
	o := engine.CreateOptions{
		Name: f.name, Image: args[0], Cmd: args[1:], User: f.user, WorkingDir: f.workdir, Hostname: f.hostname,
		Tty: f.tty, OpenStdin: f.interactive, Tmpfs: f.tmpfs, ReadOnly: f.readOnly,
		Privileged: f.privileged, CapAdd: f.capAdd, CapDrop: f.capDrop, SecurityOpt: f.securityOpt,
		CPUs: f.cpus, PidsLimit: f.pidsLimit, Ulimits: f.ulimits, AutoRemove: f.rm, StopSignal: f.stopSignal,
		HealthCmd: f.healthCmd, HealthInterval: f.healthInterval, HealthTimeout: f.healthTimeout, HealthStartPeriod: f.healthStartPeriod,
		HealthRetries: f.healthRetries, NoHealthcheck: f.noHealthcheck,
		Init: f.init, Isolation: f.isolation, NetworkMode: f.network, Pod: f.pod,
	}
	if f.pod != "" && !f.networkSet {
		o.NetworkMode = "" // the pod's
	}
	for i, so := range o.SecurityOpt {
		// A profile file is read by the engine, maybe in another
		// directory: make it absolute here.
		if v, ok := strings.CutPrefix(so, "seccomp="); ok && v != "unconfined" && v != "builtin" && !filepath.IsAbs(v) {
			abs, err := filepath.Abs(v)
			if err != nil {
				return o, err
			}
			o.SecurityOpt[i] = "seccomp=" + abs
		}
	}
	ports, err := engine.ParsePorts(f.publish)
	if err != nil {
		return o, err
	}
	o.Ports, o.PublishAll = ports, f.publishAll
	o.IP, o.MAC, o.DNS, o.DNSSearch, o.ExtraHosts, o.Aliases = f.ip, f.mac, f.dns, f.dnsSearch, f.addHosts, f.aliases
	if f.entrypointSet {
		ep := []string{}
		if f.entrypoint != "" {
			ep = []string{f.entrypoint}
		}
		o.Entrypoint = &ep
	}
	if f.stopTimeoutSet {
		t := f.stopTimeout
		o.StopTimeout = &t
	}
	if f.memory != "" {
		m, err := parseSize(f.memory)
		if err != nil {
			return o, fmt.Errorf("--memory %q: %w", f.memory, err)
		}
		o.Memory = m
	}
	o.Resources = spec.Resources{CPUShares: f.cpuShares, CPUPeriod: f.cpuPeriod, CPUQuota: f.cpuQuota,
		CpusetCpus: f.cpusetCpus, CpusetMems: f.cpusetMems, OomKillDisable: f.oomKillDisable, BlkioWeight: f.blkioWeight}
	if f.memorySwap == "-1" {
		o.Resources.MemorySwap = -1
	} else if f.memorySwap != "" {
		if o.Resources.MemorySwap, err = parseSize(f.memorySwap); err != nil {
			return o, fmt.Errorf("--memory-swap %q: %w", f.memorySwap, err)
		}
	}
	if f.memoryReservation != "" {
		if o.Resources.MemoryReservation, err = parseSize(f.memoryReservation); err != nil {
			return o, fmt.Errorf("--memory-reservation %q: %w", f.memoryReservation, err)
		}
	}
	if f.shmSize != "" {
		if o.ShmSize, err = parseSize(f.shmSize); err != nil {
			return o, fmt.Errorf("--shm-size %q: %w", f.shmSize, err)
		}
	}
	if f.oomScoreAdjSet {
		adj := f.oomScoreAdj
		o.OOMScoreAdj = &adj
	}
	o.Devices, o.DeviceCgroupRules, o.GroupAdd = f.devices, f.deviceCgroupRules, f.groupAdd
	o.UIDMaps, o.GIDMaps = f.uidMaps, f.gidMaps
	for _, kv := range f.sysctls {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return o, fmt.Errorf("--sysctl %q: want name=value", kv)
		}
		if o.Sysctls == nil {
			o.Sysctls = map[string]string{}
		}
		o.Sysctls[k] = v
	}
	o.PidMode, o.IpcMode, o.UTSMode, o.CgroupnsMode, o.UsernsMode = f.pid, f.ipc, f.uts, f.cgroupns, f.userns
	o.CgroupParent, o.Domainname, o.DNSOptions, o.VolumesFrom, o.Expose = f.cgroupParent, f.domainname, f.dnsOptions, f.volumesFrom, f.expose
	for _, a := range f.annotations {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return o, fmt.Errorf("--annotation %q: want key=value", a)
		}
		if o.Annotations == nil {
			o.Annotations = map[string]string{}
		}
		o.Annotations[k] = v
	}
	if o.Restart, err = engine.ParseRestartPolicy(f.restart); err != nil {
		return o, err
	}
	for _, file := range f.envFiles {
		lines, err := readEnvFile(file)
		if err != nil {
			return o, err
		}
		o.Env = append(o.Env, lines...)
	}
	for _, kv := range f.env {
		if !strings.Contains(kv, "=") {
			// docker: a bare KEY takes this environment's value, or is
			// left out.
			if v, ok := os.LookupEnv(kv); ok {
				o.Env = append(o.Env, kv+"="+v)
			}
			continue
		}
		o.Env = append(o.Env, kv)
	}
	labels := slices.Clone(f.labels)
	for _, file := range f.labelFiles {
		// docker reads a label file as an env file, labels given with
		// -l after it.
		lines, err := readLabelFile(file)
		if err != nil {
			return o, err
		}
		labels = append(lines, labels...)
	}
	if len(labels) > 0 {
		o.Labels = map[string]string{}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			o.Labels[k] = v
		}
	}
	o.LogDriver = f.logDriver
	for _, lo := range f.logOpts {
		k, v, ok := strings.Cut(lo, "=")
		switch {
		case ok && k == "max-size":
			n, err := parseSize(v)
			if err != nil || n < 4096 {
				return o, fmt.Errorf("--log-opt %s: a size of at least 4k (e.g. 10m)", lo)
			}
			o.LogMaxSize = n
		case ok && k == "tag":
			o.LogTag = v
		case ok && k == "path":
			o.LogPath = v
		case ok && k == "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return o, fmt.Errorf("--log-opt %s: a number of 1 or more", lo)
			}
			o.LogMaxFiles = n
		default:
			return o, fmt.Errorf("--log-opt %q: berth knows max-size=SIZE, max-file=N, tag=TEMPLATE and, with --log-driver k8s-file, path=FILE", lo)
		}
	}
	for _, v := range f.volumes {
		b, err := absBind(v)
		if err != nil {
			return o, err
		}
		o.Binds = append(o.Binds, b)
	}
	for _, m := range f.mounts {
		bind, tmpfs, extra, err := parseMount(m)
		if err != nil {
			return o, err
		}
		if bind != "" {
			o.Binds = append(o.Binds, bind)
		}
		if extra != nil {
			if o.MountExtras == nil {
				o.MountExtras = map[string]engine.MountExtra{}
			}
			o.MountExtras[extra.dst] = extra.MountExtra
		}
		if tmpfs != "" {
			o.Tmpfs = append(o.Tmpfs, tmpfs)
		}
	}
	return o, nil
}

// absBind resolves a -v source that is a relative host path (".", "..",
// "./x", "../x") against the CLI's working directory, as docker's CLI
// does: the engine may run elsewhere.
func absBind(v string) (string, error) {
	src, rest, ok := strings.Cut(v, ":")
	if !ok || !isRelPath(src) {
		return v, nil
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", fmt.Errorf("-v %q: %w", v, err)
	}
	return abs + ":" + rest, nil
}

func isRelPath(s string) bool {
	return s == "." || s == ".." || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../")
}

// mountKeys are the --mount keys for each type (docker's); a key of
// another type, or one docker does not have, is refused by name.
var mountKeys = map[string][]string{
	"bind":   {"bind-propagation", "bind-recursive"},
	"volume": {"volume-nocopy", "volume-subpath", "volume-opt", "volume-driver", "volume-label"},
	"tmpfs":  {"tmpfs-size", "tmpfs-mode"},
}

// mountExtra is what a --mount says beyond its -v value, and the
// container path it is for.
type mountExtra struct {
	engine.MountExtra
	dst string
}

// parseMount turns --mount into a -v or --tmpfs value, and what a -v
// value cannot say. The value is CSV, as docker's: a field with commas
// (volume-opt=o=size=1m,uid=1) is quoted.
func parseMount(s string) (bind, tmpfs string, extra *mountExtra, err error) {
	kv := map[string]string{}
	readonly, nocopy := false, false
	var volumeOpts map[string]string
	fields, err := csv.NewReader(strings.NewReader(s)).Read()
	if err != nil {
		fields = []string{""}
		if s != "" {
			return "", "", nil, fmt.Errorf("--mount %q: %w", s, err)
		}
	}
	for _, part := range fields {
		k, v, ok := strings.Cut(part, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "" {
			return "", "", nil, fmt.Errorf("--mount %q: an empty field: give key=value pairs separated by commas", s)
		}
		switch k {
		case "readonly", "ro", "volume-nocopy":
			b := true
			if ok {
				b, err = strconv.ParseBool(v)
				if err != nil {
					return "", "", nil, fmt.Errorf("--mount %q: %s=%q: true or false", s, k, v)
				}
			}
			if k == "volume-nocopy" {
				nocopy = b
			} else {
				readonly = b
			}
			kv[k] = v
		case "volume-opt":
			ok, ov, valid := strings.Cut(v, "=")
			if !valid || ok == "" {
				return "", "", nil, fmt.Errorf("--mount %q: volume-opt=%q: give volume-opt=KEY=VALUE (type, device or o)", s, v)
			}
			if volumeOpts == nil {
				volumeOpts = map[string]string{}
			}
			volumeOpts[ok] = ov
			kv[k] = v
		case "type", "source", "src", "target", "destination", "dst", "consistency",
			"bind-propagation", "bind-recursive", "volume-subpath", "volume-driver", "volume-label",
			"tmpfs-size", "tmpfs-mode":
			if !ok {
				return "", "", nil, fmt.Errorf("--mount %q: %q is not key=value", s, part)
			}
			kv[k] = v
		default:
			return "", "", nil, fmt.Errorf("--mount %q: unknown key %q (docker's keys: type, source, target, readonly, bind-propagation, bind-recursive, volume-nocopy, volume-subpath, volume-opt, tmpfs-size, tmpfs-mode, consistency)", s, k)
		}
	}
	typ := kv["type"]
	if typ == "" {
		typ = "volume" // docker's default
	}
	if _, ok := mountKeys[typ]; !ok {
		return "", "", nil, fmt.Errorf("--mount %q: type must be bind, tmpfs or volume", s)
	}
	for t, keys := range mountKeys {
		for _, k := range keys {
			if _, set := kv[k]; set && t != typ {
				return "", "", nil, fmt.Errorf("--mount %q: %s is for type=%s, not type=%s", s, k, t, typ)
			}
		}
	}
	// consistency is macOS's; docker accepts it and ignores it on Linux.
	switch kv["consistency"] {
	case "", "default", "consistent", "cached", "delegated":
	default:
		return "", "", nil, fmt.Errorf("--mount %q: consistency=%q: default, consistent, cached or delegated", s, kv["consistency"])
	}
	src := kv["source"]
	if src == "" {
		src = kv["src"]
	}
	dst := kv["target"]
	if dst == "" {
		dst = kv["destination"]
	}
	if dst == "" {
		dst = kv["dst"]
	}
	if dst == "" {
		return "", "", nil, fmt.Errorf("--mount %q: target= is required", s)
	}
	mode := ""
	if readonly {
		mode = ":ro"
	}
	switch typ {
	case "bind":
		if src == "" {
			return "", "", nil, fmt.Errorf("--mount %q: source= is required for a bind mount", s)
		}
		if src, err = filepath.Abs(src); err != nil {
			return "", "", nil, fmt.Errorf("--mount %q: %w", s, err)
		}
		// Unlike -v, --mount does not create a missing host path.
		if _, err := os.Stat(src); err != nil {
			return "", "", nil, fmt.Errorf("--mount %q: bind source path does not exist: %s", s, src)
		}
		var opts []string
		if readonly {
			opts = append(opts, "ro")
		}
		switch p := kv["bind-propagation"]; p {
		case "":
		case "rprivate", "private", "rshared", "shared", "rslave", "slave":
			opts = append(opts, p)
		default:
			return "", "", nil, fmt.Errorf("--mount %q: bind-propagation=%q: one of rprivate, private, rshared, shared, rslave, slave", s, p)
		}
		switch r := kv["bind-recursive"]; r {
		case "", "enabled", "writable":
			// Recursive, read-only at the top only: what berth's ro is.
		case "disabled":
			extra = &mountExtra{dst: dst, MountExtra: engine.MountExtra{NonRecursive: true}}
		case "readonly":
			if !readonly {
				return "", "", nil, fmt.Errorf("--mount %q: bind-recursive=readonly needs readonly", s)
			}
			extra = &mountExtra{dst: dst, MountExtra: engine.MountExtra{ReadOnlyRecursive: true}}
		default:
			return "", "", nil, fmt.Errorf("--mount %q: bind-recursive=%q: enabled, disabled, writable or readonly", s, r)
		}
		b := src + ":" + dst
		if len(opts) > 0 {
			b += ":" + strings.Join(opts, ",")
		}
		if extra != nil {
			extra.dst = filepath.Clean(dst)
		}
		return b, "", extra, nil
	case "tmpfs":
		if src != "" {
			return "", "", nil, fmt.Errorf("--mount %q: a tmpfs has no source", s)
		}
		var opts []string
		if v := kv["tmpfs-size"]; v != "" {
			n, err := parseSize(v)
			if err != nil {
				return "", "", nil, fmt.Errorf("--mount %q: tmpfs-size: %w", s, err)
			}
			opts = append(opts, "size="+strconv.FormatInt(n, 10))
		}
		if v := kv["tmpfs-mode"]; v != "" {
			if _, err := strconv.ParseUint(v, 8, 32); err != nil {
				return "", "", nil, fmt.Errorf("--mount %q: tmpfs-mode=%q: an octal mode such as 1777", s, v)
			}
			opts = append(opts, "mode="+v)
		}
		if readonly {
			opts = append(opts, "ro")
		}
		if len(opts) > 0 {
			return "", dst + ":" + strings.Join(opts, ","), nil, nil
		}
		return "", dst, nil, nil
	}
	// type=volume
	if strings.HasPrefix(src, "/") {
		return "", "", nil, fmt.Errorf("--mount %q: a volume's source is a volume name, not a path (use type=bind for host paths)", s)
	}
	if _, set := kv["volume-label"]; set {
		return "", "", nil, fmt.Errorf("--mount %q: berth does not support volume-label yet: create the volume first (berth volume create --label) and drop the key", s)
	}
	if sub, set := kv["volume-subpath"]; set || volumeOpts != nil {
		if src == "" && sub != "" {
			return "", "", nil, fmt.Errorf("--mount %q: volume-subpath needs a named volume (source=)", s)
		}
		extra = &mountExtra{dst: filepath.Clean(dst), MountExtra: engine.MountExtra{Subpath: sub, VolumeOptions: volumeOpts}}
	}
	if d := kv["volume-driver"]; d != "" && d != "local" {
		return "", "", nil, fmt.Errorf("--mount %q: volume-driver=%s: berth has the local driver only", s, d)
	}
	if nocopy {
		mode += map[bool]string{true: ",nocopy", false: ":nocopy"}[readonly]
	}
	// An empty source is an anonymous volume: "/dst", or ":/dst:ro"
	// (the empty source keeps the fields in place).
	b := src + ":" + dst + mode
	if src == "" && mode == "" {
		b = dst
	}
	return b, "", extra, nil
}

// parseSize reads docker's sizes: 1024, 512k, 64m, 1g (binary units).
func parseSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	s = strings.TrimSuffix(s, "b")
	if s == "" {
		return 0, errors.New("empty size")
	}
	switch s[len(s)-1] {
	case 'k':
		mult = 1 << 10
	case 'm':
		mult = 1 << 20
	case 'g':
		mult = 1 << 30
	case 't':
		mult = 1 << 40
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) || v*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is not a size (e.g. 512m, 1g)", s)
	}
	return int64(v * float64(mult)), nil
}

func readEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--env-file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if n == 1 {
			l = strings.TrimPrefix(l, "\ufeff") // a byte order mark
		}
		l = strings.TrimLeft(l, " \t")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, _, hasValue := strings.Cut(l, "=")
		if k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("--env-file %s line %d: %q is not KEY=VALUE", path, n, l)
		}
		if !hasValue {
			if v, ok := os.LookupEnv(k); ok {
				out = append(out, k+"="+v)
			}
			continue
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// readLabelFile reads --label-file: a line per label, key=value or a
// bare key (an empty value); blank lines and # comments are skipped.
func readLabelFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--label-file: %w", err)
	}
	var out []string
	for n, l := range strings.Split(strings.TrimPrefix(string(data), "\ufeff"), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if k, _, _ := strings.Cut(l, "="); k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("--label-file %s line %d: %q is not key=value", path, n+1, l)
		}
		out = append(out, l)
	}
	return out, nil
}

// errNotATTY is docker's refusal of -it when stdin is no terminal.
var errNotATTY = errors.New("the input device is not a TTY")

// ensureImage applies run's and create's --pull: a missing image is pulled
// (docker's "Unable to find image ... locally"), always re-pulled, or
// never.
// The registry client is set up only when a pull is due: a run of an
// image that is here pays nothing for it.
func (g *globalOptions) ensureImage(ctx context.Context, local *image.Service, name, policy, platform string) error {
	switch policy {
	case "always", "missing", "never":
	default:
		return fmt.Errorf("--pull %q: use always, missing or never", policy)
	}
	if policy != "always" {
		recs, err := local.Get(ctx, name)
		if err == nil {
			// Never run another platform's image silently: docker
			// refuses one that does not match --platform too.
			if platform != "" && len(recs) > 0 && recs[0].Platform != "" && !image.SamePlatform(platform, recs[0].Platform) {
				return fmt.Errorf("image %s is for %s, not %s: pull it for that platform first (berth pull --platform %s %s), or run with --pull always", name, recs[0].Platform, platform, platform, name)
			}
			return nil
		}
		if !errors.Is(err, image.ErrNotFound) {
			return err
		}
		if policy == "never" {
			return fmt.Errorf("%w (and --pull never)", err)
		}
		fmt.Fprintf(os.Stderr, "Unable to find image '%s' locally\n", name)
	}
	s, err := g.images()
	if err != nil {
		return err
	}
	pctx, cancel := signalContext()
	defer cancel()
	_, err = pullWithProgress(pctx, s, name, platform, false)
	return err
}

func newRunCommand(g *globalOptions, create bool) *cobra.Command {
	var f runFlags
	var detach bool
	var ao attachFlags
	use, short := "run [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a container from an image"
	if create {
		use, short = "create [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a container from an image, without starting it"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if h, _ := cmd.Flags().GetBool("help"); h {
				return cmd.Help()
			}
			o, err := f.options(args)
			if err != nil {
				return &ExitError{Code: 125, Err: err}
			}
			var keys []byte
			if !create && !detach {
				if keys, err = ao.keys(); err != nil {
					return &ExitError{Code: 125, Err: err}
				}
			}
			if !create && !detach && f.tty && f.interactive && !term.IsTerminal(int(os.Stdin.Fd())) {
				// docker's refusal: a pty fed from a pipe or a file.
				return &ExitError{Code: 1, Err: errNotATTY}
			}
			ctx := context.Background()
			e, err := g.openEngine(false)
			if err != nil {
				return err
			}
			defer e.Close()
			if err := g.ensureImage(ctx, e.Images(), o.Image, f.pull, f.platform); err != nil {
				return &ExitError{Code: 125, Err: err}
			}
			var cid *os.File
			if f.cidfile != "" {
				// docker's: refuse an existing file, hold it for the ID.
				if cid, err = os.OpenFile(f.cidfile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
					if errors.Is(err, os.ErrExist) {
						err = fmt.Errorf("container ID file found, make sure the other container isn't running or delete %s", f.cidfile)
					}
					return &ExitError{Code: 125, Err: err}
				}
				defer cid.Close()
			}
			c, err := e.Create(ctx, o)
			if err != nil {
				if cid != nil {
					os.Remove(f.cidfile)
				}
				return &ExitError{Code: 125, Err: err}
			}
			if cid != nil {
				if _, err := cid.WriteString(c.ID); err != nil {
					return &ExitError{Code: 125, Err: fmt.Errorf("--cidfile %s: %w", f.cidfile, err)}
				}
			}
			for _, w := range c.Warnings {
				fmt.Fprintf(os.Stderr, "WARNING: %s\n", w)
			}
			if create {
				fmt.Println(c.ID)
				return nil
			}
			if detach {
				if _, err := e.Start(ctx, c.ID, nil); err != nil {
					return startFailed(err)
				}
				fmt.Println(c.ID)
				return nil
			}
			err = runAttached(ctx, e, c, attachOptions{stdin: f.interactive, keys: keys, sigProxy: ao.sigProxy})
			if errors.Is(err, engine.ErrDetached) {
				return nil // docker's run: detached is success, silently
			}
			return err
		},
	}
	f.register(cmd)
	if !create {
		cmd.Flags().BoolVarP(&detach, "detach", "d", false, "run in the background and print the container ID")
		ao.register(cmd, true)
	}
	return cmd
}

// startFailed reports a start that failed with docker's exit codes (the
// engine removed a --rm container).
func startFailed(err error) error {
	var se *engine.StartError
	if errors.As(err, &se) {
		return &ExitError{Code: se.Code, Err: err}
	}
	return &ExitError{Code: 125, Err: err}
}

// attachOptions say how run, start -a and attach connect our stdio.
type attachOptions struct {
	stdin    bool   // our stdin to the container's (if it has one open)
	keys     []byte // the detach sequence (a tty's only)
	sigProxy bool   // pass the signals we get on to the container
	late     bool   // attach: the container runs already
}

// attachFlags are --detach-keys and --sig-proxy.
type attachFlags struct {
	detachKeys string
	sigProxy   bool
}

func (a *attachFlags) register(cmd *cobra.Command, sigProxy bool) {
	cmd.Flags().StringVar(&a.detachKeys, "detach-keys", "", "the key sequence that detaches from a container with a tty, leaving it running: a character or ctrl-<a-z, @, [, \\, ], ^, _>, comma separated (default ctrl-p,ctrl-q)")
	a.sigProxy = true
	if sigProxy {
		cmd.Flags().BoolVar(&a.sigProxy, "sig-proxy", true, "pass the signals berth receives on to the container's process (not with a tty)")
	}
}

func (a *attachFlags) keys() ([]byte, error) { return engine.ParseDetachKeys(a.detachKeys) }

// runAttached starts a container with our stdio, forwards signals (or,
// with a tty, puts our terminal in raw mode and passes its size on),
// waits, and exits with the container's code; with the detach keys typed,
// it exits 0 and the container runs on.
func runAttached(ctx context.Context, e *engine.Engine, c *engine.Container, o attachOptions) error {
	attach := &engine.Attach{Stdout: os.Stdout, Stderr: os.Stderr, DetachKeys: o.keys}
	if o.stdin {
		attach.Stdin = os.Stdin
	}
	restore := rawTerminal(c)
	defer restore()
	sigs, stopSignals, err := notifySignals(c, o)
	if err != nil {
		restore()
		return startFailed(err)
	}
	defer stopSignals()
	st, err := e.Start(ctx, c.ID, attach)
	if err != nil {
		restore()
		return startFailed(err)
	}
	return followAttached(ctx, e, c, st, sigs, restore)
}

// rawTerminal puts our terminal in raw mode for a container with a tty;
// the returned function restores it (once).
func rawTerminal(c *engine.Container) func() {
	if !c.Config.Tty || !term.IsTerminal(int(os.Stdin.Fd())) {
		return func() {}
	}
	old, err := term.MakeRaw(int(os.Stdin.Fd()))
	if err != nil {
		return func() {}
	}
	return sync.OnceFunc(func() { term.Restore(int(os.Stdin.Fd()), old) })
}

// notifySignals catches what an attached CLI passes on: every signal
// but SIGCHLD, SIGPIPE and SIGURG, as docker's CLI (berth attach, like
// docker's, proxies nothing with a tty; run keeps catching them: our
// terminal is raw, so they come from kill), or only SIGWINCH. The
// asynchronous ones go through internal/sigrelay, which costs
// microseconds where os/signal's Notify and Stop cost milliseconds for
// this many; the few synchronous ones (a kill -SEGV of the CLI) through
// os/signal, subscribed beside the start. stop ends both.
func notifySignals(c *engine.Container, o attachOptions) (sigs <-chan unix.Signal, stop func(), err error) {
	if !o.sigProxy || (o.late && c.Config.Tty) {
		rl, err := sigrelay.Start(unix.SIGWINCH)
		if err != nil {
			return nil, nil, err
		}
		return rl.C, rl.Stop, nil
	}
	rl, err := sigrelay.Start(sigrelay.Async...)
	if err != nil {
		return nil, nil, err
	}
	faults := make(chan os.Signal, 4)
	subscribed := make(chan struct{})
	go func() {
		signal.Notify(faults, faultSignals...)
		close(subscribed)
	}()
	out := make(chan unix.Signal, 16)
	// done ends the merge even where nobody reads out any more (a
	// start that failed): a send would otherwise block it for good.
	done := make(chan struct{})
	go func() {
		defer close(out)
		send := func(s unix.Signal) bool {
			select {
			case out <- s:
				return true
			case <-done:
				return false
			}
		}
		for {
			select {
			case s, ok := <-rl.C:
				if !ok || !send(s) {
					return
				}
			case s := <-faults:
				if sig, ok := s.(unix.Signal); ok && !send(sig) {
					return
				}
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			close(done)
			rl.Stop()
			<-subscribed
			signal.Stop(faults)
		})
	}, nil
}

// faultSignals are the signals the kernel also sends for a fault; sent by
// kill, they are passed on like any other.
var faultSignals = []os.Signal{unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP, unix.SIGSYS, unix.SIGPROF}

// followAttached passes signals on while it waits for the container's
// exit or our detach keys, records the exit (unless the monitor's exit
// handler does: a restart policy), and returns the container's
// code as ours.
func followAttached(ctx context.Context, e *engine.Engine, c *engine.Container, st *engine.Started, sigs <-chan unix.Signal, restore func()) error {
	go func() {
		for sig := range sigs {
			switch sig {
			case unix.SIGWINCH:
				unix.Kill(st.MonitorPid, unix.SIGWINCH)
			case unix.SIGCHLD, unix.SIGPIPE, unix.SIGURG:
			default:
				if !c.Config.Tty {
					unix.Kill(st.Pid, sig)
				}
			}
		}
	}()
	code, err := st.Wait()
	restore()
	if errors.Is(err, engine.ErrDetached) {
		return err
	}
	if err != nil {
		return &ExitError{Code: 125, Err: err}
	}
	if err := st.Finish(context.WithoutCancel(ctx), code); err != nil {
		fmt.Fprintf(os.Stderr, "berth: %v\n", err)
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

func newStartCommand(g *globalOptions) *cobra.Command {
	var attach, interactive bool
	var ao attachFlags
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start created or stopped containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			if attach || interactive {
				if len(args) != 1 {
					return errors.New("start -a/-i takes one container")
				}
				keys, err := ao.keys()
				if err != nil {
					return &ExitError{Code: 1, Err: err}
				}
				c, err := e.Get(ctx, args[0])
				if err != nil {
					return err
				}
				err = runAttached(context.WithoutCancel(ctx), e, c, attachOptions{stdin: interactive, keys: keys, sigProxy: true})
				if errors.Is(err, engine.ErrDetached) {
					return nil // docker's start -a: detached is success
				}
				return err
			}
			var errs []error
			for _, a := range args {
				if _, err := e.Start(ctx, a, nil); err != nil && !errors.Is(err, engine.ErrAlreadyRunning) {
					errs = append(errs, err)
					continue
				}
				fmt.Println(a)
			}
			return errors.Join(errs...)
		}),
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "attach stdout and stderr and wait for the exit")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "attach stdin too")
	ao.register(cmd, false)
	return cmd
}

// errSkip from eachContainer's fn: nothing to print for that argument,
// and no failure.
var errSkip = errors.New("skipped")

func eachContainer(args []string, fn func(a string) error) error {
	var errs []error
	for _, a := range args {
		if err := fn(a); errors.Is(err, errSkip) {
			continue
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Println(a)
	}
	return errors.Join(errs...)
}

func newStopCommand(g *globalOptions) *cobra.Command {
	var t int
	var sig string
	cmd := &cobra.Command{
		Use:   "stop [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Stop running containers: the stop signal, then SIGKILL after the timeout",
		Args:  cobra.MinimumNArgs(1),
	}
	cmd.RunE = g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
		o := engine.StopOptions{Signal: sig}
		if cmd.Flags().Changed("time") || cmd.Flags().Changed("timeout") {
			o.Timeout = &t
		}
		if err := checkSignal(sig); err != nil {
			return err
		}
		return eachContainer(args, func(a string) error { return e.StopWith(ctx, a, o) })
	})
	cmd.Flags().IntVarP(&t, "time", "t", 10, "seconds to wait before SIGKILL (default: the container's stop timeout)")
	cmd.Flags().IntVar(&t, "timeout", 10, "same as --time")
	cmd.Flags().StringVarP(&sig, "signal", "s", "", "signal to send to the container (default: its stop signal)")
	return cmd
}

func newRestartCommand(g *globalOptions) *cobra.Command {
	var t int
	var sig string
	cmd := &cobra.Command{
		Use:   "restart [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Restart containers",
		Args:  cobra.MinimumNArgs(1),
	}
	cmd.RunE = g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
		o := engine.StopOptions{Signal: sig}
		if cmd.Flags().Changed("time") || cmd.Flags().Changed("timeout") {
			o.Timeout = &t
		}
		if err := checkSignal(sig); err != nil {
			return err
		}
		return eachContainer(args, func(a string) error { return e.RestartWith(ctx, a, o) })
	})
	cmd.Flags().IntVarP(&t, "time", "t", 10, "seconds to wait before SIGKILL")
	cmd.Flags().IntVar(&t, "timeout", 10, "same as --time")
	cmd.Flags().StringVarP(&sig, "signal", "s", "", "signal to send to the container (default: its stop signal)")
	return cmd
}

// checkSignal checks stop's and restart's -s before any container is
// touched ("" is the container's own stop signal).
func checkSignal(s string) error {
	if s == "" {
		return nil
	}
	_, err := engine.ParseSignal(s)
	return err
}

func newKillCommand(g *globalOptions) *cobra.Command {
	var sig string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Send a signal to containers (default SIGKILL)",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			s, err := engine.ParseSignal(sig)
			if err != nil {
				return err
			}
			return eachContainer(args, func(a string) error { return e.Kill(ctx, a, s) })
		}),
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "KILL", "signal to send")
	return cmd
}

func newRmCommand(g *globalOptions) *cobra.Command {
	var o engine.RemoveOptions
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] CONTAINER [CONTAINER...]",
		Aliases: []string{"remove"},
		Short:   "Remove containers",
		Args:    cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return eachContainer(args, func(a string) error {
				err := e.Remove(context.WithoutCancel(ctx), a, o)
				if o.Force && errors.Is(err, store.ErrNotFound) {
					// docker's rm -f: said, but not a failure.
					fmt.Fprintf(os.Stderr, "berth: %v\n", err)
					return errSkip
				}
				return err
			})
		}),
	}
	cmd.Flags().BoolVarP(&o.Force, "force", "f", false, "kill a running container first")
	cmd.Flags().BoolVarP(&o.Volumes, "volumes", "v", false, "remove the container's anonymous volumes")
	return cmd
}

func newRenameCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  cobra.ExactArgs(2),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return e.Rename(ctx, args[0], args[1])
		}),
	}
}

func newPauseCommand(g *globalOptions, pause bool) *cobra.Command {
	use, short := "pause CONTAINER [CONTAINER...]", "Freeze all processes of containers"
	if !pause {
		use, short = "unpause CONTAINER [CONTAINER...]", "Thaw paused containers"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return eachContainer(args, func(a string) error {
				if pause {
					return e.Pause(ctx, a)
				}
				return e.Unpause(ctx, a)
			})
		}),
	}
}

func newWaitCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Wait for containers to stop and print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			var errs []error
			for _, a := range args {
				code, err := e.Wait(ctx, a)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Println(code)
			}
			return errors.Join(errs...)
		}),
	}
}

func newLogsCommand(g *globalOptions) *cobra.Command {
	var o engine.LogOptions
	var since, until, tail string
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Print a container's output",
		Args:  cobra.ExactArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			now := time.Now()
			var err error
			if o.Since, err = timespec.Parse(since, now); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if o.Until, err = timespec.Parse(until, now); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			o.Tail = -1
			if tail != "all" && tail != "" {
				if o.Tail, err = strconv.Atoi(tail); err != nil || o.Tail < 0 {
					return fmt.Errorf("--tail %q: a number of lines or all", tail)
				}
			}
			out := bufio.NewWriter(os.Stdout)
			errw := bufio.NewWriter(os.Stderr)
			flusher := &flushWriter{w: out, follow: o.Follow}
			eflusher := &flushWriter{w: errw, follow: o.Follow}
			defer out.Flush()
			defer errw.Flush()
			return e.Logs(ctx, args[0], o, flusher, eflusher)
		}),
	}
	fl := cmd.Flags()
	fl.BoolVarP(&o.Follow, "follow", "f", false, "keep printing new output until the container stops")
	fl.StringVar(&since, "since", "", "only output after this time (RFC 3339, Unix time, or a duration such as 10m)")
	fl.StringVar(&until, "until", "", "only output before this time")
	fl.StringVarP(&tail, "tail", "n", "all", "number of lines from the end")
	fl.BoolVarP(&o.Timestamps, "timestamps", "t", false, "show timestamps")
	return cmd
}

// flushWriter buffers, and flushes each write when following.
type flushWriter struct {
	w      *bufio.Writer
	follow bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil && f.follow {
		err = f.w.Flush()
	}
	return n, err
}

var _ io.Writer = (*flushWriter)(nil)

func newContainerPruneCommand(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
		Args:  cobra.NoArgs,
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			_ = force // berth does not prompt
			removed, reclaimed, failed, err := e.PruneContainers(ctx, nil)
			printDeleted("Containers", removed)
			fmt.Printf("Total reclaimed space: %s\n", humanBytes(reclaimed))
			return errors.Join(failed, err)
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt (berth never does)")
	return cmd
}
