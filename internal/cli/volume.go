//go:build linux

package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

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
			c.AddCommand(newInfoCommand(g), newSystemResetCommand(g), newSystemPruneCommand(g), newEventsCommand(g), newDNSServerCommand(g), newPodReaperCommand())
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

// volumeRow is one volume as docker's volume ls templates see it: every
// field a string, as docker prints them.
type volumeRow struct {
	Availability string
	Driver       string
	Group        string
	Labels       string
	Links        string
	Mountpoint   string
	Name         string
	Scope        string
	Size         string
	Status       string

	labels map[string]string
	hdr    bool
}

func (r volumeRow) MarshalJSON() ([]byte, error) {
	type plain volumeRow
	return marshalRow(plain(r))
}

// Label is {{.Label "KEY"}}.
func (r volumeRow) Label(key string) string {
	if r.hdr {
		return labelHeader(key)
	}
	return r.labels[key]
}

func (volumeRow) header() any {
	return volumeRow{hdr: true, Availability: "AVAILABILITY", Driver: "DRIVER", Group: "GROUP", Labels: "LABELS", Links: "LINKS",
		Mountpoint: "MOUNTPOINT", Name: "VOLUME NAME", Scope: "SCOPE", Size: "SIZE", Status: "STATUS"}
}

const volumeTable = "table {{.Driver}}\t{{.Name}}"

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
						return fmt.Errorf("invalid filter %q (volume ls knows dangling, name, label)", k)
					}
				}
				if keep {
					rows = append(rows, volumeRow{Availability: "N/A", Driver: v.Driver, Group: "N/A", Labels: joinLabels(v.Labels), Links: "N/A",
						Mountpoint: v.Mountpoint, Name: v.Name, Scope: "local", Size: "N/A", Status: "N/A", labels: v.Labels})
				}
			}
			if quiet {
				for _, r := range rows {
					fmt.Println(r.Name)
				}
				return nil
			}
			return printList(os.Stdout, format, volumeTable, rows)
		}),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only names")
	cmd.Flags().StringVar(&format, "format", "table", "table, json, or a Go template (\"table \" in front for a header and columns)")
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
			removed, reclaimed, err := e.PruneVolumes(ctx, all, nil)
			printDeleted("Volumes", removed)
			fmt.Printf("Total reclaimed space: %s\n", humanBytes(reclaimed))
			return err
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "named volumes too")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt (berth never does)")
	return cmd
}

// systemInfo is `berth info`.
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
