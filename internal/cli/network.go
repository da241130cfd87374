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

// networkRow is one network as docker's network ls templates see it:
// every field a string, as docker prints them.
type networkRow struct {
	CreatedAt string
	Driver    string
	ID        string
	IPv4      string
	IPv6      string
	Internal  string
	Labels    string
	Name      string
	Scope     string

	labels map[string]string
	hdr    bool
}

func (r networkRow) MarshalJSON() ([]byte, error) {
	type plain networkRow
	return marshalRow(plain(r))
}

// Label is {{.Label "KEY"}}.
func (r networkRow) Label(key string) string {
	if r.hdr {
		return labelHeader(key)
	}
	return r.labels[key]
}

func (networkRow) header() any {
	return networkRow{hdr: true, CreatedAt: "CREATED AT", Driver: "DRIVER", ID: "NETWORK ID", IPv4: "IPV4", IPv6: "IPV6",
		Internal: "INTERNAL", Labels: "LABELS", Name: "NAME", Scope: "SCOPE"}
}

const networkTable = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"

func newNetworkLsCommand(g *globalOptions) *cobra.Command {
	var quiet, noTrunc bool
	var format string
	var filters []string
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
				keep, err := matchNetworkFilters(c, filters)
				if err != nil {
					return err
				}
				if !keep {
					continue
				}
				id := c.ID
				if !noTrunc {
					id = engine.ShortID(id)
				}
				rows = append(rows, networkRow{CreatedAt: c.Created.String(), Driver: c.Driver, ID: id, IPv4: "true",
					IPv6: strconv.FormatBool(c.IPv6), Internal: strconv.FormatBool(c.Internal), Labels: joinLabels(c.Labels),
					Name: c.Name, Scope: "local", labels: c.Labels})
			}
			if quiet {
				for _, r := range rows {
					fmt.Println(r.ID)
				}
				return nil
			}
			return printList(os.Stdout, format, networkTable, rows)
		}),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate IDs")
	cmd.Flags().StringVar(&format, "format", "table", "table, json, or a Go template (\"table \" in front for a header and columns)")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter: driver=, id=, label=, name=, scope=, type=custom|builtin")
	return cmd
}

// matchNetworkFilters applies network ls's filters: values of one key are
// alternatives, every key must match.
func matchNetworkFilters(c *network.Config, filters []string) (bool, error) {
	byKey := map[string][]string{}
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return false, fmt.Errorf("bad format of filter (expected name=value)")
		}
		byKey[k] = append(byKey[k], v)
	}
	for k, vals := range byKey {
		any := false
		for _, v := range vals {
			var ok bool
			switch k {
			case "driver":
				ok = c.Driver == v
			case "id":
				ok = strings.HasPrefix(c.ID, v)
			case "name":
				ok = strings.Contains(c.Name, v)
			case "label":
				lk, lv, hasV := strings.Cut(v, "=")
				got, has := c.Labels[lk]
				ok = has && (!hasV || got == lv)
			case "scope":
				ok = v == "local"
			case "type":
				if v != "custom" && v != "builtin" {
					return false, fmt.Errorf("invalid filter: 'type'='%s'", v)
				}
				ok = (v == "builtin") == c.Default
			case "dangling":
				ok = true
			default:
				return false, fmt.Errorf("invalid filter '%s'", k)
			}
			any = any || ok
		}
		if !any {
			return false, nil
		}
	}
	return true, nil
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
			removed, err := e.PruneNetworks(ctx, nil)
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

// printDeleted prints docker's "Deleted <What>:" list.
func printDeleted(what string, names []string) {
	fmt.Printf("Deleted %s:\n", what)
	for _, n := range names {
		fmt.Println(n)
	}
}
