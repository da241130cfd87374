//go:build linux

package cli

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/network"
	"github.com/spf13/cobra"
)

func addNetworkCommands(root *cobra.Command, g *globalOptions) {
	n := &cobra.Command{Use: "network", Short: "Manage networks"}
	n.AddCommand(newNetworkCreateCommand(g), newNetworkLsCommand(g), newNetworkInspectCommand(g), newNetworkRmCommand(g),
		newNetworkConnectCommand(g), newNetworkDisconnectCommand(g), newNetworkPruneCommand(g))
	root.AddCommand(n, newPortCommand(g))
}

func newNetworkCreateCommand(g *globalOptions) *cobra.Command {
	var o network.CreateOptions
	var labels, opts, subnets, gateways, ipRanges []string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  cobra.ExactArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			o.Name = args[0]
			o.Labels = parseLabels(labels)
			if err := splitFamilies(&o, subnets, gateways); err != nil {
				return err
			}
			for _, r := range ipRanges {
				p, err := netip.ParsePrefix(r)
				if err != nil {
					return fmt.Errorf("--ip-range %q: want a CIDR such as 10.89.1.128/25", r)
				}
				field := &o.IPRange
				if p.Addr().Is6() {
					field = &o.IPRange6
				}
				if *field != "" {
					return fmt.Errorf("--ip-range %s: one range per address family (%s already)", r, *field)
				}
				*field = r
			}
			o.Options = map[string]string{}
			for _, kv := range opts {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("-o %q: want key=value", kv)
				}
				o.Options[k] = v
			}
			c, err := e.CreateNetwork(ctx, o)
			if err != nil {
				return err
			}
			fmt.Println(c.Name)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.Driver, "driver", "d", "bridge", "bridge or vlan")
	fl.StringArrayVar(&subnets, "subnet", nil, "subnet in CIDR form, one IPv4 and (with --ipv6) one IPv6 (default: a free /24 in 10.89.0.0/16, a random fdXX:XXXX:XXXX::/64)")
	fl.StringArrayVar(&gateways, "gateway", nil, "gateway address, one per family (default: the subnet's first)")
	fl.StringArrayVar(&ipRanges, "ip-range", nil, "allocate container addresses from a sub-range of the subnet (CIDR), one per family")
	fl.BoolVar(&o.IPv6, "ipv6", false, "dual-stack: give containers an IPv6 address too")
	fl.BoolVar(&o.Internal, "internal", false, "no traffic in or out of the network")
	fl.StringArrayVarP(&labels, "label", "l", nil, "set a label: key=value")
	fl.StringArrayVarP(&opts, "opt", "o", nil, "driver options: vlan=ID, parent=INTERFACE, mtu=N")
	return cmd
}

// splitFamilies sorts --subnet and --gateway values into o's IPv4 and
// IPv6 fields: at most one of each family. An IPv6 subnet implies --ipv6.
func splitFamilies(o *network.CreateOptions, subnets, gateways []string) error {
	for _, s := range subnets {
		ip, _, err := net.ParseCIDR(s)
		if err != nil {
			return fmt.Errorf("--subnet %q: want a CIDR such as 10.89.1.0/24 or fd00:1::/64", s)
		}
		field := &o.Subnet
		if ip.To4() == nil {
			field = &o.Subnet6
			o.IPv6 = true
		}
		if *field != "" {
			return fmt.Errorf("--subnet %s: one subnet per address family (%s already)", s, *field)
		}
		*field = s
	}
	for _, g := range gateways {
		ip := net.ParseIP(g)
		if ip == nil {
			return fmt.Errorf("--gateway %q: not an IP address", g)
		}
		field := &o.Gateway
		if ip.To4() == nil {
			field = &o.Gateway6
		}
		if *field != "" {
			return fmt.Errorf("--gateway %s: one gateway per address family (%s already)", g, *field)
		}
		*field = g
	}
	if o.Gateway6 != "" && !o.IPv6 {
		return fmt.Errorf("--gateway %s is IPv6: give --ipv6 (and an IPv6 --subnet)", o.Gateway6)
	}
	return nil
}

type networkRow struct {
	Name     string `json:"Name"`
	ID       string `json:"Id"`
	Driver   string `json:"Driver"`
	Subnet   string `json:"Subnet"`
	Gateway  string `json:"Gateway"`
	Bridge   string `json:"Bridge"`
	Internal bool   `json:"Internal"`
}

func newNetworkLsCommand(g *globalOptions) *cobra.Command {
	var quiet bool
	var format string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			m, err := e.Networks()
			if err != nil {
				return err
			}
			list, err := m.List(ctx)
			if err != nil {
				return err
			}
			rows := []networkRow{}
			for _, c := range list {
				rows = append(rows, networkRow{Name: c.Name, ID: c.ID, Driver: c.Driver, Subnet: c.Subnet, Gateway: c.Gateway, Bridge: c.Bridge, Internal: c.Internal})
			}
			switch {
			case quiet:
				for _, r := range rows {
					fmt.Println(r.Name)
				}
				return nil
			case format == "json":
				return writeJSON(rows, "  ")
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "NETWORK ID\tNAME\tDRIVER\tSUBNET\tBRIDGE")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID[:12], r.Name, r.Driver, r.Subnet, r.Bridge)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only names")
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	return cmd
}

func newNetworkInspectCommand(g *globalOptions) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Show details of networks (JSON)",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			m, err := e.Networks()
			if err != nil {
				return err
			}
			return inspectEach(args, format, func(a string) (any, error) {
				c, err := m.Get(ctx, a)
				if err != nil {
					return nil, err
				}
				return inspectNetwork(ctx, e, c), nil
			})
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "a Go template over each network")
	return cmd
}

func newNetworkRmCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove networks no container uses",
		Args:    cobra.MinimumNArgs(1),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return eachContainer(args, func(a string) error { return e.RemoveNetwork(ctx, a) })
		}),
	}
}

func newNetworkPruneCommand(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove the networks no container uses (not the default one)",
		Args:  cobra.NoArgs,
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			removed, err := pruneNetworks(ctx, e)
			printDeleted("Networks", removed)
			return err
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt (berth never does)")
	return cmd
}

func newNetworkConnectCommand(g *globalOptions) *cobra.Command {
	var req engine.NetworkRequest
	cmd := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  cobra.ExactArgs(2),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return e.Connect(ctx, args[1], args[0], req)
		}),
	}
	cmd.Flags().StringVar(&req.IP, "ip", "", "IPv4 address")
	cmd.Flags().StringVar(&req.MAC, "mac-address", "", "MAC address")
	cmd.Flags().StringArrayVar(&req.Aliases, "alias", nil, "another name for the container on this network")
	return cmd
}

func newNetworkDisconnectCommand(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  cobra.ExactArgs(2),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return e.Disconnect(ctx, args[1], args[0])
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "accepted for docker compatibility")
	return cmd
}

func newPortCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List a container's published ports",
		Args:  cobra.RangeArgs(1, 2),
		RunE: g.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			c, err := e.Get(ctx, args[0])
			if err != nil {
				return err
			}
			want, wantProto := 0, ""
			if len(args) == 2 {
				p, proto, _ := strings.Cut(args[1], "/")
				if want, err = strconv.Atoi(p); err != nil {
					return fmt.Errorf("%q is not a port", args[1])
				}
				wantProto = proto
			}
			found := false
			for _, p := range c.NetworkSettings.Ports() {
				if want != 0 && (p.ContainerPort != want || wantProto != "" && p.Protocol != wantProto) {
					continue
				}
				host := p.HostIP
				if host == "" {
					host = "0.0.0.0"
				}
				found = true
				hostPort := net.JoinHostPort(host, strconv.Itoa(p.HostPort))
				if want != 0 {
					fmt.Println(hostPort)
				} else {
					fmt.Printf("%d/%s -> %s\n", p.ContainerPort, p.Protocol, hostPort)
				}
			}
			if want != 0 && !found {
				return fmt.Errorf("no public port %s published for %s", args[1], c.Name)
			}
			return nil
		}),
	}
}

// pruneNetworks removes the networks no container uses (not the default
// one) and returns their names.
func pruneNetworks(ctx context.Context, e *engine.Engine) ([]string, error) {
	m, err := e.Networks()
	if err != nil {
		return nil, err
	}
	list, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, c := range list {
		users, err := e.NetworkUsers(ctx, c.Name)
		if err != nil || len(users) > 0 || c.Default {
			continue
		}
		if err := e.RemoveNetwork(ctx, c.Name); err == nil {
			removed = append(removed, c.Name)
		}
	}
	return removed, nil
}

// printDeleted prints docker's "Deleted <What>:" list.
func printDeleted(what string, names []string) {
	fmt.Printf("Deleted %s:\n", what)
	for _, n := range names {
		fmt.Println(n)
	}
}
