//go:build linux

package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/spf13/cobra"
)

// `berth pod`: podman's pod verbs over the engine's pods (see
// internal/engine/pod.go): a pod is namespaces without a process, which
// `run --pod` joins.
func addPodCommands(root *cobra.Command, g *globalOptions) {
	pod := &cobra.Command{Use: "pod", Short: "Manage pods: network, IPC and UTS namespaces that containers share (run --pod)"}
	pod.AddCommand(newPodCreateCommand(g), newPodLsCommand(g), newPodInspectCommand(g), newPodStartCommand(g),
		newPodStopCommand(g), newPodRmCommand(g))
	root.AddCommand(pod)
}

func newPodCreateCommand(g *globalOptions) *cobra.Command {
	var o engine.PodOptions
	var labels, publish, share, uidMaps, gidMaps []string
	var shmSize string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS]",
		Short: "Create a pod: its namespaces pinned and its networks attached, ready for run --pod",
		Args:  cobra.NoArgs,
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			o.Labels = parseLabels(labels)
			ports, err := engine.ParsePorts(publish)
			if err != nil {
				return err
			}
			o.Ports = ports
			for _, s := range share {
				for _, ns := range strings.Split(s, ",") {
					switch strings.TrimSpace(ns) {
					case "net", "ipc", "uts", "":
					case "pid":
						o.ShareProcess = true
					default:
						return fmt.Errorf("--share %q: a pod shares net, ipc and uts, and pid when asked", ns)
					}
				}
			}
			if shmSize != "" {
				if o.ShmSize, err = parseSize(shmSize); err != nil {
					return fmt.Errorf("--shm-size %q: %w", shmSize, err)
				}
			}
			if len(uidMaps) > 0 || len(gidMaps) > 0 {
				m, err := engine.ParseIDMaps(uidMaps, gidMaps)
				if err != nil {
					return err
				}
				o.UIDMaps, o.GIDMaps = m.UIDs, m.GIDs
			}
			p, err := e.PodCreate(ctx, o)
			if err != nil {
				return err
			}
			fmt.Println(p.ID)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Name, "name", "", "the pod's name (default: a generated one)")
	fl.StringVar(&o.Hostname, "hostname", "", "the hostname of the pod's containers (default: the pod's name)")
	fl.StringVar(&o.NetworkMode, "network", "bridge", "network: bridge (the default network), none, host, or a network's name")
	fl.StringVar(&o.IP, "ip", "", "IPv4 address on the network")
	fl.StringVar(&o.MAC, "mac-address", "", "MAC address of the pod's interface")
	fl.StringArrayVar(&o.Aliases, "network-alias", nil, "another name for the pod on its network")
	fl.StringArrayVarP(&publish, "publish", "p", nil, "publish a port: [ip:][hostPort:]containerPort[/tcp|udp]")
	fl.StringArrayVar(&o.DNS, "dns", nil, "DNS server")
	fl.StringArrayVar(&o.DNSSearch, "dns-search", nil, "DNS search domain")
	fl.StringArrayVar(&o.DNSOptions, "dns-option", nil, "a DNS option (resolv.conf options)")
	fl.StringArrayVar(&o.ExtraHosts, "add-host", nil, "add a name:ip line to /etc/hosts")
	fl.StringArrayVarP(&labels, "label", "l", nil, "set a label: key=value")
	fl.StringVar(&o.IpcMode, "ipc", "", "IPC namespace: the pod's own (default) or host")
	fl.StringVar(&o.CgroupParent, "cgroup-parent", "", "parent cgroup of the pod's containers")
	fl.StringVar(&shmSize, "shm-size", "", "size of the pod's /dev/shm (default 64m)")
	fl.StringArrayVar(&uidMaps, "uidmap", nil, "one user namespace for the pod's containers with this uid mapping, CONTAINER:HOST:SIZE (repeatable; root must be mapped)")
	fl.StringArrayVar(&gidMaps, "gidmap", nil, "its gid mapping, CONTAINER:HOST:SIZE (repeatable; default: the --uidmap values)")
	fl.StringVar(&o.Isolation, "isolation", "", "the pod's isolation: default, or vm (one VM holding the pod's containers)")
	fl.StringArrayVar(&share, "share", nil, "namespaces to share: net,ipc,uts (always) and pid (one PID namespace for the pod's containers)")
	return cmd
}

// podRow is one pod as `pod ls` templates see it (podman's columns).
type podRow struct {
	ID         string `json:"Id"`
	Name       string
	Status     string
	Created    string
	Hostname   string
	Containers string
	Networks   string
	Labels     string
	hdr        bool
	labels     map[string]string
}

func (r podRow) MarshalJSON() ([]byte, error) {
	type plain podRow
	return marshalRow(plain(r))
}

// Label is {{.Label "KEY"}}.
func (r podRow) Label(key string) string {
	if r.hdr {
		return labelHeader(key)
	}
	return r.labels[key]
}

func (podRow) header() any {
	return podRow{hdr: true, ID: "POD ID", Name: "NAME", Status: "STATUS", Created: "CREATED", Hostname: "HOSTNAME",
		Containers: "# OF CONTAINERS", Networks: "NETWORKS", Labels: "LABELS"}
}

const podTable = "table {{.ID}}\t{{.Name}}\t{{.Status}}\t{{.Created}}\t{{.Containers}}"

func newPodLsCommand(g *globalOptions) *cobra.Command {
	var quiet, noTrunc bool
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list", "ps"},
		Short:   "List pods",
		Args:    cobra.NoArgs,
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			pods, err := e.PodList(ctx)
			if err != nil {
				return err
			}
			rows := []podRow{}
			for _, p := range pods {
				keep := true
				for _, f := range filters {
					k, v, ok := strings.Cut(f, "=")
					if !ok {
						return fmt.Errorf("--filter %q: want key=value", f)
					}
					switch k {
					case "name":
						keep = keep && strings.Contains(p.Name, v)
					case "id":
						keep = keep && strings.HasPrefix(p.ID, v)
					case "status":
						keep = keep && strings.EqualFold(p.Status, v)
					case "label":
						lk, lv, hasV := strings.Cut(v, "=")
						got, has := p.Labels[lk]
						keep = keep && has && (!hasV || got == lv)
					default:
						return fmt.Errorf("invalid filter %q (pod ls knows name, id, status, label)", k)
					}
				}
				if !keep {
					continue
				}
				id := p.ID
				if !noTrunc {
					id = engine.ShortID(id)
				}
				var nets []string
				for _, n := range p.Networks {
					nets = append(nets, n.Name)
				}
				if len(nets) == 0 {
					nets = []string{p.NetworkMode}
				}
				rows = append(rows, podRow{ID: id, Name: p.Name, Status: p.Status, Created: humanDuration(time.Since(p.Created)) + " ago",
					Hostname: p.Hostname, Containers: strconv.Itoa(len(p.Containers)), Networks: strings.Join(nets, ","),
					Labels: joinLabels(p.Labels), labels: p.Labels})
			}
			if quiet {
				for _, r := range rows {
					fmt.Println(r.ID)
				}
				return nil
			}
			return printList(os.Stdout, format, podTable, rows)
		}),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "full IDs")
	cmd.Flags().StringVar(&format, "format", "table", "table, json, or a Go template (\"table \" in front for a header and columns)")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter: name=, id=, status=, label=")
	return cmd
}

func newPodInspectCommand(g *globalOptions) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] POD [POD...]",
		Short: "Show details of pods (JSON)",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return inspectEach(args, format, func(a string) (any, error) { return e.PodGet(ctx, a) })
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "a Go template over each pod")
	return cmd
}

func newPodStartCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "start POD [POD...]",
		Short: "Start pods: ready their namespaces and networks again and start their containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return eachContainer(args, func(a string) error {
				_, err := e.PodStart(ctx, a)
				return err
			})
		}),
	}
}

func newPodStopCommand(g *globalOptions) *cobra.Command {
	var t int
	cmd := &cobra.Command{
		Use:   "stop [OPTIONS] POD [POD...]",
		Short: "Stop pods: their containers, then their namespaces and networks (the pod stays)",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			var timeout *int
			if t >= 0 {
				timeout = &t
			}
			return eachContainer(args, func(a string) error {
				_, err := e.PodStop(ctx, a, timeout)
				return err
			})
		}),
	}
	cmd.Flags().IntVarP(&t, "time", "t", -1, "seconds to wait for each container to stop before killing it (default: the container's)")
	return cmd
}

func newPodRmCommand(g *globalOptions) *cobra.Command {
	var o engine.PodRemoveOptions
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] POD [POD...]",
		Aliases: []string{"remove"},
		Short:   "Remove pods (-f: with their containers)",
		Args:    cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return eachContainer(args, func(a string) error {
				err := e.PodRemove(ctx, a, o)
				if errors.Is(err, engine.ErrNetworkLeft) {
					// Removed, as asked: what was left is said.
					fmt.Fprintf(os.Stderr, "warning: %v\n", err)
					return nil
				}
				return err
			})
		}),
	}
	cmd.Flags().BoolVarP(&o.Force, "force", "f", false, "remove the pod's containers too, killing those that run")
	cmd.Flags().BoolVar(&o.IgnoreNetworkErrors, "ignore-network-errors", false, "remove the pod even if its network's CNI DEL fails (a plugin or network add-on gone for good): what the plugins held, such as addresses and rules, is left to you")
	return cmd
}
