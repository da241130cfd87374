// Package cni attaches network namespaces to networks through CNI: libcni
// running the standard plugins (Debian's containernetworking-plugins in
// /usr/lib/cni), with berth's own result cache and IPAM state under its
// state directories, never the host's /var/lib/cni.
//
// Invariants: Detach undoes what Attach did, from the cached result, even
// when the namespace is already gone (the plugins then only release what
// they hold on the host: veth ends, IPAM leases, rules); both are safe to
// repeat.
package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// DefaultPluginDirs are searched for plugin binaries, in order.
var DefaultPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni"}

// Network is a parsed conflist.
type Network struct {
	list *libcni.NetworkConfigList
}

// Name is the network's name.
func (n *Network) Name() string { return n.list.Name }

// ParseNetwork reads a CNI conflist (JSON with "cniVersion", "name",
// "plugins").
func ParseNetwork(conflist []byte) (*Network, error) {
	l, err := libcni.ConfListFromBytes(conflist)
	if err != nil {
		return nil, fmt.Errorf("cni: network configuration: %w", err)
	}
	return &Network{list: l}, nil
}

// Client runs plugins.
type Client struct {
	cni *libcni.CNIConfig
}

// New returns a client that finds plugins in pluginDirs (nil: the default
// ones) and caches results in cacheDir.
func New(pluginDirs []string, cacheDir string) (*Client, error) {
	if pluginDirs == nil {
		pluginDirs = DefaultPluginDirs
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("cni: cache directory: %w", err)
	}
	return &Client{cni: libcni.NewCNIConfigWithCacheDir(pluginDirs, cacheDir, nil)}, nil
}

// Attachment names one interface of one container in one namespace.
type Attachment struct {
	ContainerID string
	NetNS       string // path of the pinned namespace
	IfName      string // e.g. eth0
	// CapabilityArgs are the runtime's arguments to plugins that declare
	// the capability: "portMappings", "ips", "mac".
	CapabilityArgs map[string]any
}

func (a Attachment) runtimeConf() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: a.ContainerID, NetNS: a.NetNS, IfName: a.IfName, CapabilityArgs: a.CapabilityArgs}
}

// Attach runs the network's plugins (ADD) and returns their result.
func (c *Client) Attach(ctx context.Context, n *Network, a Attachment) (*types100.Result, error) {
	res, err := c.cni.AddNetworkList(ctx, n.list, a.runtimeConf())
	if err != nil {
		return nil, fmt.Errorf("cni: attach %s to network %s: %w", a.ContainerID, n.Name(), err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("cni: network %s: result: %w", n.Name(), err)
	}
	return r, nil
}

// Detach runs the network's plugins (DEL).
func (c *Client) Detach(ctx context.Context, n *Network, a Attachment) error {
	if err := c.cni.DelNetworkList(ctx, n.list, a.runtimeConf()); err != nil {
		return fmt.Errorf("cni: detach %s from network %s: %w", a.ContainerID, n.Name(), err)
	}
	return nil
}

// CachedResult is the result of the last ADD of a to n, as libcni
// cached it (nil: none is cached).
func (c *Client) CachedResult(n *Network, a Attachment) (*types100.Result, error) {
	res, err := c.cni.GetNetworkListCachedResult(n.list, a.runtimeConf())
	if err != nil || res == nil {
		return nil, err
	}
	return types100.NewResultFromResult(res)
}

// BridgeOptions describe a bridge network.
type BridgeOptions struct {
	Name, Bridge, Subnet, Gateway string
	IPMasq                        bool
	IPAMDataDir                   string // host-local's lease directory
}

// BridgeConflist is the conflist of a bridge network with host-local IPAM
// (and the firewall plugin when masquerading), in CNI 1.0.0.
func BridgeConflist(o BridgeOptions) ([]byte, error) {
	ipam := map[string]any{
		"type":    "host-local",
		"ranges":  [][]map[string]string{{{"subnet": o.Subnet, "gateway": o.Gateway}}},
		"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
		"dataDir": o.IPAMDataDir,
	}
	plugins := []any{map[string]any{
		"type": "bridge", "bridge": o.Bridge, "isGateway": true, "ipMasq": o.IPMasq,
		"hairpinMode": true, "ipam": ipam,
	}}
	return json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": o.Name, "plugins": plugins})
}

// CheckPlugins finds each named plugin in pluginDirs (nil: the default
// ones) and says which are missing, and where it looked.
func CheckPlugins(pluginDirs []string, names ...string) error {
	if pluginDirs == nil {
		pluginDirs = DefaultPluginDirs
	}
	var missing []string
	for _, n := range names {
		found := false
		for _, d := range pluginDirs {
			if fi, err := os.Stat(filepath.Join(d, n)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("CNI plugins %s not found in %s (install containernetworking-plugins)", strings.Join(missing, ", "), strings.Join(pluginDirs, ":"))
	}
	return nil
}
