package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// berth's host firewall: a chain per table and per root, jumped to
// first, rewritten as a whole (one iptables-restore, atomic) from the
// root's network records whenever they change:
//
//	filter BERTH-FWD-<root>
//	  -i B -o B -j ACCEPT                       within each network
//	  -i B ! -o B -j DROP, -o B ! -i B -j DROP  an --internal network: nothing in or out
//	  -i B -o berth+ -j DROP, -i berth+ -o B -j DROP   between two berth networks
//	  -i B -j ACCEPT                            out to the world
//	  -o B -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT   replies, published ports
//	nat BERTH-NAT-<root>
//	  -s SUBNET ! -o B -j MASQUERADE            each non-internal network
//
// <root> is a hash of the root's network directory: each root rewrites
// only its own chains, so two roots on one host (tests, a second
// installation) never drop each other's rules; the isolation rules name
// the root's own bridges, so they pass other roots' traffic within a
// bridge on to those roots' chains.
//
// Why per network and not the plugins' per-container rules (bridge's
// ipMasq, the firewall plugin): a container's start and exit would run
// about 30 iptables processes (100-150 ms here); these rules depend on the
// networks alone, so a start runs none. The per-container rules that must
// exist (published ports) are the portmap plugin's and go with each DEL.
// Traffic within one bridge reaches iptables only with br_netfilter's
// bridge-nf-call-iptables (on here), hence the per-bridge ACCEPT first.

// chains are the root's two chains, and where each is jumped to from.
type chains struct{ forward, nat string }

// The chains of berth before they were per root: removed when found.
var legacyChains = chains{forward: "BERTH-FORWARD", nat: "BERTH-POSTROUTING"}

func chainsFor(dir string) chains {
	sum := sha256.Sum256([]byte(dir))
	h := hex.EncodeToString(sum[:4])
	return chains{forward: "BERTH-FWD-" + h, nat: "BERTH-NAT-" + h}
}

// jump is the rule in a built-in chain that sends traffic to one of ours:
// filter FORWARD for the forward chain, nat POSTROUTING for the nat one.
func (c chains) jumps() [][3]string {
	return [][3]string{{"filter", "FORWARD", c.forward}, {"nat", "POSTROUTING", c.nat}}
}

// family is iptables for IPv4, ip6tables for IPv6: the same chains and
// rules, over each family's networks.
type family struct {
	cmd string // iptables or ip6tables
	v6  bool
}

var (
	ipv4 = family{cmd: "iptables"}
	ipv6 = family{cmd: "ip6tables", v6: true}
)

func (f family) run(args ...string) error {
	out, err := exec.Command(f.cmd, append([]string{"-w", "5"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", f.cmd, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// has checks for a rule. iptables takes the table before the command:
// "-C -t nat ..." is refused as a bad argument, which would read as
// "absent" forever.
func (f family) has(table, chain string, rule ...string) bool {
	args := append([]string{"-w", "5", "-t", table, "-C", chain}, rule...)
	return exec.Command(f.cmd, args...).Run() == nil
}

func iptablesHas(table, chain string, rule ...string) bool { return ipv4.has(table, chain, rule...) }

// rules renders both chains of one family for the given networks (for
// IPv6, the dual-stack ones).
func rules(nets []*Config, ch chains, f family) string {
	var b strings.Builder
	fwd := ch.forward
	b.WriteString("*filter\n:" + fwd + " - [0:0]\n")
	var bridged []*Config
	for _, c := range nets {
		if c.Driver == DriverBridge && c.Bridge != "" && (!f.v6 || c.IPv6) {
			bridged = append(bridged, c)
		}
	}
	for _, c := range bridged {
		fmt.Fprintf(&b, "-A %s -i %s -o %s -j ACCEPT\n", fwd, c.Bridge, c.Bridge)
		if c.Internal {
			fmt.Fprintf(&b, "-A %s -i %s ! -o %s -j DROP\n-A %s -o %s ! -i %s -j DROP\n", fwd, c.Bridge, c.Bridge, fwd, c.Bridge, c.Bridge)
		}
	}
	for _, c := range bridged {
		fmt.Fprintf(&b, "-A %s -i %s -o berth+ -j DROP\n-A %s -i berth+ -o %s -j DROP\n", fwd, c.Bridge, fwd, c.Bridge)
	}
	for _, c := range bridged {
		if !c.Internal {
			fmt.Fprintf(&b, "-A %s -i %s -j ACCEPT\n", fwd, c.Bridge)
			fmt.Fprintf(&b, "-A %s -o %s -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT\n", fwd, c.Bridge)
		}
	}
	b.WriteString("COMMIT\n*nat\n:" + ch.nat + " - [0:0]\n")
	for _, c := range bridged {
		if !c.Internal {
			subnet := c.Subnet
			if f.v6 {
				subnet = c.Subnet6
			}
			fmt.Fprintf(&b, "-A %s -s %s ! -o %s -j MASQUERADE\n", ch.nat, subnet, c.Bridge)
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

func (m *Manager) rulesMarker() string { return filepath.Join(m.runDir, "rules") }

// syncRules makes the host's chains of this root match nets, unless the
// marker in the run directory says they already do (it goes with a
// reboot, as the rules do). With no network left, the chains and their
// jumps are removed.
func (m *Manager) syncRules(nets []*Config) error {
	if len(nets) == 0 {
		os.Remove(m.rulesMarker())
		return errors.Join(removeChains(ipv4, m.chains), removeChains(ipv6, m.chains))
	}
	dual := slices.ContainsFunc(nets, func(c *Config) bool { return c.IPv6 })
	text4 := rules(nets, m.chains, ipv4)
	text6 := ""
	if dual {
		text6 = rules(nets, m.chains, ipv6)
	}
	sum := sha256.Sum256([]byte(text4 + "\x00" + text6))
	if old, err := os.ReadFile(m.rulesMarker()); err == nil && string(old) == hex.EncodeToString(sum[:]) {
		return nil
	}
	if err := install(ipv4, m.chains, text4); err != nil {
		return err
	}
	if dual {
		if err := install(ipv6, m.chains, text6); err != nil {
			return err
		}
	} else if err := removeChains(ipv6, m.chains); err != nil {
		// The last dual-stack network went: no ip6tables rule stays.
		return err
	}
	// The chains of older berths, one root for all, with the jump that
	// was added again at every rule change.
	removeChains(ipv4, legacyChains)
	if err := os.MkdirAll(m.runDir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(m.rulesMarker(), []byte(hex.EncodeToString(sum[:])), 0o600)
}

// install writes one family's chains whole and adds the jumps to them.
func install(f family, ch chains, text string) error {
	cmd := exec.Command(f.cmd+"-restore", "-w", "5", "--noflush")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("install berth's firewall chains: %s-restore: %v: %s", f.cmd, err, strings.TrimSpace(string(out)))
	}
	for _, j := range ch.jumps() {
		if !f.has(j[0], j[1], "-j", j[2]) {
			if err := f.run("-t", j[0], "-I", j[1], "1", "-j", j[2]); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeChains deletes one family's chains and every jump to them.
// Chains that do not exist are no error.
func removeChains(f family, ch chains) error {
	var errs []error
	for _, j := range ch.jumps() {
		for f.has(j[0], j[1], "-j", j[2]) {
			if err := f.run("-t", j[0], "-D", j[1], "-j", j[2]); err != nil {
				errs = append(errs, err)
				break
			}
		}
		if exec.Command(f.cmd, "-w", "5", "-t", j[0], "-n", "-L", j[2]).Run() != nil {
			continue // no such chain
		}
		if err := f.run("-t", j[0], "-F", j[2]); err != nil {
			errs = append(errs, err)
		} else if err := f.run("-t", j[0], "-X", j[2]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// probeVLAN checks, in a throw-away network namespace, that the kernel can
// make an 802.1Q link.
func probeVLAN() error {
	out, err := exec.Command("unshare", "-n", "sh", "-c", "ip link add d0 type dummy && ip link add link d0 name d0.7 type vlan id 7").CombinedOutput()
	if err != nil {
		return fmt.Errorf("VLAN networks need the kernel's 802.1Q support (CONFIG_VLAN_8021Q, module 8021q), which this kernel lacks (%s): %w",
			strings.TrimSpace(string(out)), ErrUnsupported)
	}
	return nil
}
