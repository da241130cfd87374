//go:build linux

package cli

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/runtime/vm"
	"github.com/berth-dev/berth/internal/userns"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// infoOutput is `berth info`'s object: docker's (the moby API's
// system.Info, and the client's part docker's CLI adds), so templates and
// JSON see docker's keys.
type infoOutput struct {
	system.Info
	ClientInfo clientInfo
	// Isolations is berth's: which isolations run here, and how (vm:
	// KVM or TCG, or why not at all). In the text output only: the JSON
	// (and so templates) keeps docker's shape.
	Isolations []isolationInfo `json:"-"`
}

type clientInfo struct {
	Debug     bool
	Version   string
	GitCommit string
	Context   string
	Plugins   []any
	Warnings  []string
}

func newInfoCommand(g *globalOptions) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Show system-wide information",
		Args:  cobra.NoArgs,
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			info, volumes, err := collectInfo(ctx, g, e)
			if err != nil {
				return err
			}
			if format == "json" {
				format = "{{json .}}"
			}
			if format != "" {
				return printInspect([]any{info}, format)
			}
			info.Isolations = g.isolations(ctx, e)
			fmt.Printf("Server Version: %s\nContainers: %d\n Running: %d\n Paused: %d\n Stopped: %d\nImages: %d\nVolumes: %d\n",
				info.ServerVersion, info.Containers, info.ContainersRunning, info.ContainersPaused, info.ContainersStopped, info.Images, volumes)
			fmt.Printf("Storage Driver: %s\nLogging Driver: %s\nCgroup Driver: %s\nCgroup Version: %s\nDefault Isolation: linux\n", info.Driver, info.LoggingDriver, info.CgroupDriver, info.CgroupVersion)
			fmt.Printf("Isolations:\n")
			for _, ii := range info.Isolations {
				state := "available"
				if !ii.Available {
					state = "unavailable"
				}
				if ii.Detail != "" {
					state += ": " + ii.Detail
				}
				fmt.Printf(" %s: %s\n", ii.Name, state)
			}
			fmt.Printf("Kernel Version: %s\nOperating System: %s\nArchitecture: %s\nCPUs: %d\nTotal Memory: %.2f GiB\n", info.KernelVersion, info.OperatingSystem, info.Architecture, info.NCPU, float64(info.MemTotal)/(1<<30))
			fmt.Printf("Berth Root Dir: %s\nBerth State Dir: %s\n", g.root, g.state)
			return nil
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "json or a Go template")
	return cmd
}

// collectInfo fills docker's Info with what berth knows; the volume count
// comes apart (docker's Info has none).
func collectInfo(ctx context.Context, g *globalOptions, e *engine.Engine) (infoOutput, int, error) {
	list, err := e.List(ctx)
	if err != nil {
		return infoOutput{}, 0, err
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	var si unix.Sysinfo_t
	unix.Sysinfo(&si)
	host, _ := os.Hostname()
	self, _ := os.Executable()
	fds, _ := os.ReadDir("/proc/self/fd")
	cgv := cgroupVersion()
	i := system.Info{ID: machineID(), Name: host, ServerVersion: Version, Containers: len(list),
		Driver: "overlay (a directory per layer)", DriverStatus: [][2]string{}, LoggingDriver: "json-file",
		CgroupDriver: "cgroupfs", CgroupVersion: cgv, KernelVersion: unix.ByteSliceToString(uts.Release[:]),
		OperatingSystem: osRelease(), OSType: "linux", Architecture: runtime.GOARCH, NCPU: runtime.NumCPU(),
		MemTotal: int64(si.Totalram) * int64(si.Unit), DockerRootDir: g.root, SystemTime: time.Now().Format(time.RFC3339Nano),
		MemoryLimit: true, SwapLimit: true, CPUCfsPeriod: true, CPUCfsQuota: true, CPUShares: true, CPUSet: true, PidsLimit: true,
		IPv4Forwarding: ipv4Forwarding(), OomKillDisable: cgv == "1", NFd: len(fds), NGoroutines: runtime.NumGoroutine(),
		IndexServerAddress: "https://index.docker.io/v1/", Labels: []string{},
		HTTPProxy: os.Getenv("HTTP_PROXY"), HTTPSProxy: os.Getenv("HTTPS_PROXY"), NoProxy: os.Getenv("NO_PROXY"),
		Plugins:        system.PluginsInfo{Volume: []string{"local"}, Network: []string{"bridge", "host", "null", "vlan"}, Log: []string{"json-file"}},
		RegistryConfig: &registry.ServiceConfig{IndexConfigs: map[string]*registry.IndexInfo{}, Mirrors: []string{}},
		Runtimes:       map[string]system.RuntimeWithStatus{"berth": {Runtime: system.Runtime{Path: self}}}, DefaultRuntime: "berth",
		Swarm:      swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
		InitBinary: "berth-init", SecurityOptions: []string{"name=seccomp,profile=builtin", "name=no-new-privileges-capable"}}
	for _, c := range list {
		switch c.State.Status {
		case engine.StatusRunning, engine.StatusRestarting:
			i.ContainersRunning++
		case engine.StatusPaused:
			i.ContainersPaused++
		default:
			i.ContainersStopped++
		}
	}
	if recs, err := e.Images().List(ctx); err == nil {
		ids := map[string]bool{}
		for _, r := range recs {
			ids[r.ID()] = true
		}
		i.Images = len(ids)
	}
	volumes := 0
	if vols, _, err := e.Volumes(ctx); err == nil {
		volumes = len(vols)
	}
	return infoOutput{Info: i, ClientInfo: clientInfo{Version: Version, Context: "default", Plugins: []any{}}}, volumes, nil
}

// machineID is the host's /etc/machine-id, docker's ID of a daemon's
// host being its own key's.
func machineID() string {
	b, _ := os.ReadFile("/etc/machine-id")
	return strings.TrimSpace(string(b))
}

func ipv4Forwarding() bool {
	b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	return len(b) > 0 && b[0] == '1'
}

// isolationInfo says whether an isolation can run here, and how.
type isolationInfo struct {
	Name      string
	Available bool
	// Detail: for vm, the accelerator (kvm or tcg) and why not KVM, or
	// why VMs cannot run at all.
	Detail string `json:",omitempty"`
}

func (g *globalOptions) isolations(ctx context.Context, e *engine.Engine) []isolationInfo {
	var out []isolationInfo
	for _, name := range e.Isolations() {
		ii := isolationInfo{Name: name, Available: true}
		if name == "vm" {
			a := g.vmDriver().Available(ctx, true)
			ii.Available = a.Available
			switch {
			case !a.Available:
				ii.Detail = a.Reason
			case a.Reason != "":
				ii.Detail = a.Accel + " (no KVM: " + a.Reason + ")"
			default:
				ii.Detail = a.Accel
			}
			if a.Available && a.Accel == vm.AccelTCG {
				if n, err := vm.TCGCodeSize(); err != nil {
					ii.Detail += "; " + err.Error()
				} else {
					ii.Detail += fmt.Sprintf("; TCG's translated code up to %d MiB a VM (%s)", n, vm.EnvTCGCode)
				}
			}
			if a.Available {
				ii.Detail += "; " + qemuUser()
			}
		}
		out = append(out, ii)
	}
	return out
}

// qemuUser says whom a VM's QEMU runs as (see engine.helperUser).
func qemuUser() string {
	if pool, err := userns.SystemFiles.Read(); err == nil && len(pool.UIDs) > 0 && len(pool.GIDs) > 0 {
		return "QEMU runs as a user of its own per VM (berth's subordinate IDs)"
	}
	return "QEMU runs as root: give berth subordinate IDs (a line berth:START:COUNT in /etc/subuid and /etc/subgid) for a user of its own per VM"
}
