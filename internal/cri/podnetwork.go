//go:build linux

package cri

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/template"

	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/network/cni"
)

// Pod network modes (PodNetwork.Mode).
const (
	// PodNetworkDefault: berth's default network.
	PodNetworkDefault = ""
	// PodNetworkCNI: the node's CNI configuration, as containerd and
	// CRI-O use it: NetworkReady is false, and pods other than the host
	// network's fail, until a network add-on writes one.
	PodNetworkCNI = "cni"
)

// PodNetwork says which network the CRI's pods join. The CNI
// configuration directory is read at each RunPodSandbox and Status, so a
// network add-on that writes or changes its file is seen at once; a pod
// keeps the network it was made on.
//
// The node's configuration is not the default: a directory that merely
// has a file (Debian's podman package installs 87-podman-bridge.conflist,
// on berth's own default subnet) would otherwise move every pod onto it.
type PodNetwork struct {
	// Mode is PodNetworkDefault, PodNetworkCNI, or the name of a berth
	// network (`berth network create`) for every pod.
	Mode string
	// ConfDir holds the node's CNI configurations (/etc/cni/net.d).
	ConfDir string
	// BinDirs are where their plugins are looked up (nil: berth's
	// default plugin directories).
	BinDirs []string
	// Template, if set, is a Go text/template of a conflist that
	// UpdateRuntimeConfig renders with the node's pod CIDRs into
	// ConfDir while it has no configuration (containerd's conf_template:
	// a node without a network add-on).
	Template string
}

// TemplateFile is the file a rendered Template becomes in ConfDir.
const TemplateFile = "10-berth-net.conflist"

// TemplateData is what a conflist template sees: the node's pod CIDRs
// as the kubelet gives them to UpdateRuntimeConfig, and a default route
// for each address family among them (containerd's fields).
type TemplateData struct {
	PodCIDR       string   // the first
	PodCIDRRanges []string // all of them
	Routes        []string // 0.0.0.0/0, ::/0
}

// LoadTemplate reads and parses a conflist template.
func LoadTemplate(path string) (*template.Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--cni-conf-template: %w", err)
	}
	t, err := template.New(filepath.Base(path)).Option("missingkey=error").Parse(string(data))
	if err != nil {
		return nil, fmt.Errorf("--cni-conf-template %s: %w", path, err)
	}
	return t, nil
}

// templateData is the data of a pod CIDR list ("10.244.1.0/24" or a
// comma-separated dual-stack pair).
func templateData(cidrs string) (TemplateData, error) {
	var d TemplateData
	v4, v6 := false, false
	for _, c := range strings.Split(cidrs, ",") {
		c = strings.TrimSpace(c)
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return d, fmt.Errorf("pod CIDR %q: %w", c, err)
		}
		d.PodCIDRRanges = append(d.PodCIDRRanges, p.Masked().String())
		if p.Addr().Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	d.PodCIDR = d.PodCIDRRanges[0]
	if v4 {
		d.Routes = append(d.Routes, "0.0.0.0/0")
	}
	if v6 {
		d.Routes = append(d.Routes, "::/0")
	}
	return d, nil
}

// renderTemplate writes ConfDir/TemplateFile from the template and the
// pod CIDRs, unless the directory has a configuration already (then the
// add-on's or the operator's stands, as with containerd); it says
// whether it wrote, and which files of the directory did not load (a
// file written over those, as containerd writes it, sorts by its name
// among them when they are mended). What it writes must load as a
// conflist.
func (pn PodNetwork) renderTemplate(cidrs string) (wrote bool, skipped []error, err error) {
	templateMu.Lock()
	defer templateMu.Unlock()
	dc, err := cni.LoadDir(pn.ConfDir)
	if err == nil {
		return false, nil, nil
	}
	if dc != nil {
		skipped = dc.Skipped
	}
	wrote, err = pn.writeTemplate(cidrs)
	return wrote, skipped, err
}

func (pn PodNetwork) writeTemplate(cidrs string) (bool, error) {
	t, err := LoadTemplate(pn.Template)
	if err != nil {
		return false, err
	}
	d, err := templateData(cidrs)
	if err != nil {
		return false, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return false, fmt.Errorf("--cni-conf-template %s: %w", pn.Template, err)
	}
	if _, err := cni.ParseNetwork(b.Bytes()); err != nil {
		return false, fmt.Errorf("--cni-conf-template %s with the pod CIDRs %s: %w", pn.Template, cidrs, err)
	}
	if err := os.MkdirAll(pn.ConfDir, 0o755); err != nil {
		return false, fmt.Errorf("%w: %w", errTemplateWrite, err)
	}
	// A temp name libcni does not read (its extensions only), renamed
	// whole: a RunPodSandbox never sees half a file.
	f, err := os.CreateTemp(pn.ConfDir, "."+TemplateFile+"-*.tmp")
	if err != nil {
		return false, fmt.Errorf("%w: %w", errTemplateWrite, err)
	}
	_, err = f.Write(b.Bytes())
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(pn.ConfDir, TemplateFile))
	}
	if err != nil {
		os.Remove(f.Name())
		return false, fmt.Errorf("%w: %w", errTemplateWrite, err)
	}
	return true, nil
}

// templateMu: one render at a time (the kubelet calls
// UpdateRuntimeConfig from one loop; a second caller must not see a
// directory half decided).
var templateMu sync.Mutex

// errTemplateWrite: the rendered configuration could not be written (an
// I/O error, not the template's).
var errTemplateWrite = errors.New("write the CNI configuration")

// DefaultCNIConfDir and DefaultCNIBinDirs are the kubelet's, containerd's
// and CRI-O's, with Debian's plugin directory after /opt/cni/bin.
const DefaultCNIConfDir = "/etc/cni/net.d"

var DefaultCNIBinDirs = []string{"/opt/cni/bin", "/usr/lib/cni"}

// berthPlugins are the plugins berth's own networks run.
var berthPlugins = []string{"bridge", "host-local", "portmap", "loopback"}

// errNetworkNotReady is the CRI's "network plugin not ready": Status
// reports it as NetworkReady false, and RunPodSandbox of a pod that
// needs a network fails with it.
var errNetworkNotReady = errors.New("cni plugin not initialized")

// podNetworkChoice is the network a pod made now would join.
type podNetworkChoice struct {
	// cni: the configuration file's network; nil for a berth network
	// (berth, "" for the default one).
	cni   *network.CNIRef
	berth string
	// skipped: configuration files that did not load, before the one
	// chosen.
	skipped []error
}

func (c podNetworkChoice) describe() map[string]any {
	if c.cni != nil {
		return map[string]any{"cni": map[string]any{"name": c.cni.Name, "file": c.cni.File}}
	}
	name := c.berth
	if name == "" {
		name = network.DefaultName
	}
	return map[string]any{"berth": name}
}

// choose finds the pod network, or says why there is none usable; err
// wraps errNetworkNotReady.
func (pn PodNetwork) choose() (podNetworkChoice, error) {
	if pn.Mode != PodNetworkCNI {
		if err := cni.CheckPlugins(nil, berthPlugins...); err != nil {
			return podNetworkChoice{}, fmt.Errorf("%w: %v", errNetworkNotReady, err)
		}
		return podNetworkChoice{berth: pn.Mode}, nil
	}
	dc, err := cni.LoadDir(pn.ConfDir)
	if err != nil {
		return podNetworkChoice{}, fmt.Errorf("%w: %v", errNetworkNotReady, err)
	}
	if err := cni.CheckPlugins(pn.BinDirs, dc.Network.PluginTypes()...); err != nil {
		return podNetworkChoice{}, fmt.Errorf("%w: network %s (%s): %v", errNetworkNotReady, dc.Network.Name(), dc.File, err)
	}
	ref := &network.CNIRef{File: dc.File, Name: dc.Network.Name(), BinDirs: pn.BinDirs}
	// From the configuration loaded here: the engine's warm pod network
	// reads the file no second time.
	ref.WarmKey, _ = network.WarmCNIKey(dc.Network, ref)
	return podNetworkChoice{cni: ref, skipped: dc.Skipped}, nil
}
