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
	"sync"
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

// rulesState is what the marker says of the rules installed since boot:
// their hash, and whether this root has IPv6 chains (v6Known: said by a
// marker of this scheme; an older one holds the hash alone).
type rulesState struct {
	sum            string
	v6, v6Known    bool
	found, corrupt bool
}

func (m *Manager) readRulesMarker() rulesState {
	data, err := os.ReadFile(m.rulesMarker())
	if err != nil {
		return rulesState{}
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return rulesState{found: true, corrupt: true}
	}
	st := rulesState{sum: f[0], found: true}
	for _, flag := range f[1:] {
		switch flag {
		case "v6=1":
			st.v6, st.v6Known = true, true
		case "v6=0":
			st.v6Known = true
		}
	}
	return st
}

// syncRules makes the host's chains of this root match nets, unless the
// marker in the run directory says they already do (it goes with a
// reboot, as the rules do). With no network left, the chains and their
// jumps are removed.
//
// A change costs one iptables-restore and, beside it, one check per jump
// (iptables-nft, ~5-10 ms a process here): the IPv6 chains are removed
// only when the marker does not say there are none, and the chains of
// older berths only at the first sync since boot (they were never
// written after it). It was eleven processes, ~70 ms of every network
// create-and-first-start and of every network rm.
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
	st := m.readRulesMarker()
	if st.sum == hex.EncodeToString(sum[:]) {
		return nil
	}
	var errs [2]error
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = install(ipv4, m.chains, text4) })
	wg.Go(func() {
		switch {
		case dual:
			errs[1] = install(ipv6, m.chains, text6)
		case !st.v6Known || st.v6:
			// The last dual-stack network went: no ip6tables rule
			// stays.
			errs[1] = removeChains(ipv6, m.chains)
		}
	})
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		os.Remove(m.rulesMarker())
		return err
	}
	if !st.found || st.corrupt {
		// The chains of older berths, one root for all, with the jump
		// that was added again at every rule change.
		removeChains(ipv4, legacyChains)
	}
	if err := os.MkdirAll(m.runDir, 0o700); err != nil {
		return err
	}
	v6 := "v6=0"
	if dual {
		v6 = "v6=1"
	}
	return os.WriteFile(m.rulesMarker(), []byte(hex.EncodeToString(sum[:])+" "+v6+"\n"), 0o600)
}

// install writes one family's chains whole and adds the jumps to them
// that are missing. The checks for the jumps run beside the restore: a
// check that comes first finds no chain, hence no jump, and the jump is
// added after the restore, as when it was missing.
func install(f family, ch chains, text string) error {
	jumps := ch.jumps()
	present := make([]bool, len(jumps))
	var restoreErr error
	var wg sync.WaitGroup
	for i, j := range jumps {
		wg.Go(func() { present[i] = f.has(j[0], j[1], "-j", j[2]) })
	}
	wg.Go(func() {
		cmd := exec.Command(f.cmd+"-restore", "-w", "5", "--noflush")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			restoreErr = fmt.Errorf("install berth's firewall chains: %s-restore: %v: %s", f.cmd, err, strings.TrimSpace(string(out)))
		}
	})
	wg.Wait()
	if restoreErr != nil {
		return restoreErr
	}
	for i, j := range jumps {
		if !present[i] {
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
