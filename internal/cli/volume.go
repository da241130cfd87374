//go:build linux

package cli

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func addVolumeCommands(root *cobra.Command, g *globalOptions) {
	vol := &cobra.Command{Use: "volume", Short: "Manage volumes"}
	vol.AddCommand(newVolumeCreateCommand(g), newVolumeLsCommand(g), newVolumeInspectCommand(g), newVolumeRmCommand(g), newVolumePruneCommand(g))
	root.AddCommand(vol)
	for _, c := range root.Commands() {
		if c.Name() == "system" {
			c.AddCommand(newInfoCommand(g), newSystemResetCommand(g), newSystemPruneCommand(g), newEventsCommand(g), newDNSServerCommand(g))
		}
	}
	root.AddCommand(newInfoCommand(g), newEventsCommand(g), newServeCommand(g))
}

func parseLabels(list []string) map[string]string {
	m := map[string]string{}
	for _, l := range list {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m
}

func newVolumeCreateCommand(g *globalOptions) *cobra.Command {
	var labels, opts []string
	var driver string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [NAME]",
		Short: "Create a volume",
		Args:  cobra.MaximumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			o := engine.VolumeOptions{Name: name, Driver: driver, Labels: parseLabels(labels)}
			for _, kv := range opts {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("-o %q: want key=value", kv)
				}
				if o.Options == nil {
					o.Options = map[string]string{}
				}
				o.Options[k] = v
			}
			v, err := e.CreateVolumeWith(ctx, o)
			if err != nil {
				return err
			}
			fmt.Println(v.Name)
			return nil
		}),
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "set a label: key=value")
	cmd.Flags().StringVarP(&driver, "driver", "d", "local", "volume driver: local")
	cmd.Flags().StringArrayVarP(&opts, "opt", "o", nil, "local driver options: type=FSTYPE, device=DEVICE, o=MOUNT-OPTIONS (the volume is that mount)")
	return cmd
}

type volumeRow struct {
	Name       string            `json:"Name"`
	Driver     string            `json:"Driver"`
	Mountpoint string            `json:"Mountpoint"`
	Labels     map[string]string `json:"Labels"`
	Anonymous  bool              `json:"Anonymous"`
	Containers int               `json:"Containers"`
}

func newVolumeLsCommand(g *globalOptions) *cobra.Command {
	var quiet bool
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    cobra.NoArgs,
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			vols, users, err := e.Volumes(ctx)
			if err != nil {
				return err
			}
			rows := []volumeRow{}
			for _, v := range vols {
				keep := true
				for _, f := range filters {
					k, val, ok := strings.Cut(f, "=")
					if !ok {
						return fmt.Errorf("--filter %q: want key=value", f)
					}
					switch k {
					case "dangling":
						keep = keep && (len(users[v.Name]) == 0) == (val == "true" || val == "1")
					case "name":
						keep = keep && strings.Contains(v.Name, val)
					case "label":
						lk, lv, hasV := strings.Cut(val, "=")
						got, has := v.Labels[lk]
						keep = keep && has && (!hasV || got == lv)
					default:
						return fmt.Errorf("--filter %q: berth knows dangling, name and label", f)
					}
				}
				if keep {
					rows = append(rows, volumeRow{Name: v.Name, Driver: v.Driver, Mountpoint: v.Mountpoint, Labels: v.Labels, Anonymous: v.Anonymous, Containers: len(users[v.Name])})
				}
			}
			switch {
			case quiet:
				for _, r := range rows {
					fmt.Println(r.Name)
				}
				return nil
			case format == "json":
				return writeJSON(rows, "  ")
			case format != "" && format != "table":
				return printTemplate("ls", format, rows)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "DRIVER\tVOLUME NAME")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\n", r.Driver, r.Name)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only names")
	cmd.Flags().StringVar(&format, "format", "table", "table, json, or a Go template")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter: dangling=true|false, name=, label=")
	return cmd
}

func newVolumeInspectCommand(g *globalOptions) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Show details of volumes (JSON)",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return inspectEach(args, format, func(a string) (any, error) {
				v, err := e.GetVolume(ctx, a)
				if err != nil {
					return nil, err
				}
				return inspectVolume(v), nil
			})
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "a Go template over each volume")
	return cmd
}

func newVolumeRmCommand(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove volumes (not while a container uses them)",
		Args:    cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return eachContainer(args, func(a string) error { return e.RemoveVolume(ctx, a, force) })
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "no error for a volume that does not exist")
	return cmd
}

func newVolumePruneCommand(g *globalOptions) *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused anonymous volumes (-a: all unused volumes)",
		Args:  cobra.NoArgs,
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			removed, err := e.PruneVolumes(ctx, all)
			printDeleted("Volumes", removed)
			return err
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "named volumes too")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt (berth never does)")
	return cmd
}

// systemInfo is `berth info`.
type systemInfo struct {
	ServerVersion     string `json:"ServerVersion"`
	Containers        int    `json:"Containers"`
	ContainersRunning int    `json:"ContainersRunning"`
	ContainersPaused  int    `json:"ContainersPaused"`
	ContainersStopped int    `json:"ContainersStopped"`
	Images            int    `json:"Images"`
	Volumes           int    `json:"Volumes"`
	Driver            string `json:"Driver"`
	LoggingDriver     string `json:"LoggingDriver"`
	CgroupVersion     string `json:"CgroupVersion"`
	Isolation         string `json:"DefaultIsolation"`
	Isolations        []isolationInfo
	KernelVersion     string `json:"KernelVersion"`
	OperatingSystem   string `json:"OperatingSystem"`
	OSType            string `json:"OSType"`
	Architecture      string `json:"Architecture"`
	NCPU              int    `json:"NCPU"`
	MemTotal          int64  `json:"MemTotal"`
	RootDir           string `json:"BerthRootDir"`
	StateDir          string `json:"BerthStateDir"`
	SecurityOptions   []string
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
		}
		out = append(out, ii)
	}
	return out
}

func cgroupVersion() string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "2"
	}
	if unix.Statfs("/sys/fs/cgroup/unified", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "1 (hybrid: cgroup2 at /sys/fs/cgroup/unified)"
	}
	return "1"
}

func osRelease() string {
	data, _ := os.ReadFile("/etc/os-release")
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "linux"
}

func newInfoCommand(g *globalOptions) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Show system-wide information",
		Args:  cobra.NoArgs,
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			list, err := e.List(ctx)
			if err != nil {
				return err
			}
			var uts unix.Utsname
			unix.Uname(&uts)
			var si unix.Sysinfo_t
			unix.Sysinfo(&si)
			info := systemInfo{ServerVersion: Version, Containers: len(list), Driver: "overlay (a directory per layer)",
				LoggingDriver: "json-file", CgroupVersion: cgroupVersion(), Isolation: "linux",
				KernelVersion: unix.ByteSliceToString(uts.Release[:]), OperatingSystem: osRelease(), OSType: "linux",
				Architecture: runtime.GOARCH, NCPU: runtime.NumCPU(), MemTotal: int64(si.Totalram) * int64(si.Unit),
				RootDir: g.root, StateDir: g.state, SecurityOptions: []string{"name=seccomp,profile=builtin", "name=no-new-privileges-capable"}}
			info.Isolations = g.isolations(ctx, e)
			for _, c := range list {
				switch c.State.Status {
				case engine.StatusRunning, engine.StatusRestarting:
					info.ContainersRunning++
				case engine.StatusPaused:
					info.ContainersPaused++
				default:
					info.ContainersStopped++
				}
			}
			if imgs, err := g.images(); err == nil {
				if recs, err := imgs.List(ctx); err == nil {
					ids := map[string]bool{}
					for _, r := range recs {
						ids[r.ID()] = true
					}
					info.Images = len(ids)
				}
			}
			if vols, _, err := e.Volumes(ctx); err == nil {
				info.Volumes = len(vols)
			}
			if format == "json" {
				return writeJSON(info, "  ")
			}
			if format != "" {
				return printInspect([]any{info}, format)
			}
			fmt.Printf("Server Version: %s\nContainers: %d\n Running: %d\n Paused: %d\n Stopped: %d\nImages: %d\nVolumes: %d\n",
				info.ServerVersion, info.Containers, info.ContainersRunning, info.ContainersPaused, info.ContainersStopped, info.Images, info.Volumes)
			fmt.Printf("Storage Driver: %s\nLogging Driver: %s\nCgroup Version: %s\nDefault Isolation: %s\n", info.Driver, info.LoggingDriver, info.CgroupVersion, info.Isolation)
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
			fmt.Printf("Berth Root Dir: %s\nBerth State Dir: %s\n", info.RootDir, info.StateDir)
			return nil
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "json or a Go template")
	return cmd
}
