//go:build linux

package cri

import (
	"errors"
	"fmt"

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
}

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
	return podNetworkChoice{cni: &network.CNIRef{File: dc.File, Name: dc.Network.Name(), BinDirs: pn.BinDirs}, skipped: dc.Skipped}, nil
}
