package network

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// berth's host firewall: a chain per table, jumped to first, rewritten as
// a whole (one iptables-restore, atomic) from the network records
// whenever they change:
//
//	filter BERTH-FORWARD
//	  -i B -o B -j ACCEPT                       within each network
//	  -i B ! -o B -j DROP, -o B ! -i B -j DROP  an --internal network: nothing in or out
//	  -i berth+ -o berth+ -j DROP               between two berth networks
//	  -i B -j ACCEPT                            out to the world
//	  -o B -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT   replies, published ports
//	nat BERTH-POSTROUTING
//	  -s SUBNET ! -o B -j MASQUERADE            each non-internal network
//
// Why per network and not the plugins' per-container rules (bridge's
// ipMasq, the firewall plugin): a container's start and exit would run
// about 30 iptables processes (100-150 ms here); these rules depend on the
// networks alone, so a start runs none. The per-container rules that must
// exist (published ports) are the portmap plugin's and go with each DEL.
// Traffic within one bridge reaches iptables only with br_netfilter's
// bridge-nf-call-iptables (on here), hence the per-bridge ACCEPT first.
const (
	forwardChain = "BERTH-FORWARD"
	natChain     = "BERTH-POSTROUTING"
)

func iptables(args ...string) error {
	out, err := exec.Command("iptables", append([]string{"-w", "5"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func iptablesHas(args ...string) bool {
	return exec.Command("iptables", append([]string{"-w", "5", "-C"}, args...)...).Run() == nil
}

// rules renders both chains for the given networks.
func rules(nets []*Config) string {
	var b strings.Builder
	b.WriteString("*filter\n:" + forwardChain + " - [0:0]\n")
	var bridged []*Config
	for _, c := range nets {
		if c.Driver == DriverBridge && c.Bridge != "" {
			bridged = append(bridged, c)
		}
	}
	for _, c := range bridged {
		fmt.Fprintf(&b, "-A %s -i %s -o %s -j ACCEPT\n", forwardChain, c.Bridge, c.Bridge)
		if c.Internal {
			fmt.Fprintf(&b, "-A %s -i %s ! -o %s -j DROP\n-A %s -o %s ! -i %s -j DROP\n", forwardChain, c.Bridge, c.Bridge, forwardChain, c.Bridge, c.Bridge)
		}
	}
	fmt.Fprintf(&b, "-A %s -i berth+ -o berth+ -j DROP\n", forwardChain)
	for _, c := range bridged {
		if !c.Internal {
			fmt.Fprintf(&b, "-A %s -i %s -j ACCEPT\n", forwardChain, c.Bridge)
			fmt.Fprintf(&b, "-A %s -o %s -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT\n", forwardChain, c.Bridge)
		}
	}
	b.WriteString("COMMIT\n*nat\n:" + natChain + " - [0:0]\n")
	for _, c := range bridged {
		if !c.Internal {
			fmt.Fprintf(&b, "-A %s -s %s ! -o %s -j MASQUERADE\n", natChain, c.Subnet, c.Bridge)
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// syncRules makes the host's berth chains match nets, unless the marker
// in the run directory says they already do (it goes with a reboot, as the
// rules do).
func (m *Manager) syncRules(nets []*Config) error {
	text := rules(nets)
	sum := sha256.Sum256([]byte(text))
	marker := filepath.Join(m.runDir, "rules")
	if old, err := os.ReadFile(marker); err == nil && string(old) == hex.EncodeToString(sum[:]) {
		return nil
	}
	cmd := exec.Command("iptables-restore", "-w", "5", "--noflush")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("install berth's firewall chains: iptables-restore: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if !iptablesHas("FORWARD", "-j", forwardChain) {
		if err := iptables("-I", "FORWARD", "1", "-j", forwardChain); err != nil {
			return err
		}
	}
	if !iptablesHas("-t", "nat", "POSTROUTING", "-j", natChain) {
		if err := iptables("-t", "nat", "-I", "POSTROUTING", "1", "-j", natChain); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(m.runDir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(marker, []byte(hex.EncodeToString(sum[:])), 0o600)
}

// RemoveHostRules deletes berth's chains and their jumps (when the last
// network goes, and for tests).
func RemoveHostRules() {
	for iptablesHas("FORWARD", "-j", forwardChain) {
		if iptables("-D", "FORWARD", "-j", forwardChain) != nil {
			break
		}
	}
	for iptablesHas("-t", "nat", "POSTROUTING", "-j", natChain) {
		if iptables("-t", "nat", "-D", "POSTROUTING", "-j", natChain) != nil {
			break
		}
	}
	iptables("-F", forwardChain)
	iptables("-X", forwardChain)
	iptables("-t", "nat", "-F", natChain)
	iptables("-t", "nat", "-X", natChain)
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
