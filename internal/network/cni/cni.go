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
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
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

// Bytes is the conflist as read (a single-plugin .conf as the list
// libcni makes of it).
func (n *Network) Bytes() []byte { return n.list.Bytes }

// PluginTypes are the plugins the network chains, in order.
func (n *Network) PluginTypes() []string {
	var out []string
	for _, p := range n.list.Plugins {
		out = append(out, p.Network.Type)
	}
	return out
}

// IPAMTypes are the IPAM plugins the chain's plugins delegate to ("" for
// one that has none), in the chain's order.
func (n *Network) IPAMTypes() []string {
	var out []string
	for _, p := range n.list.Plugins {
		out = append(out, p.Network.IPAM.Type)
	}
	return out
}

// ErrNoConfig: a directory of CNI configurations holds none that loads.
var ErrNoConfig = errors.New("no network config found")

// DirConfig is the network a directory of CNI configurations defines.
type DirConfig struct {
	Network *Network
	File    string
	// Skipped are the files before File that did not load, with why.
	Skipped []error
}

// LoadDir loads the network of a CNI configuration directory (the
// kubelet's /etc/cni/net.d) as containerd and CRI-O choose it: the first
// file, in lexical order, of .conflist, .conf and .json files that loads;
// a single-plugin .conf or .json becomes a list of one. None: an error
// that wraps ErrNoConfig and says what was skipped, with a DirConfig of
// only the files skipped.
func LoadDir(dir string) (*DirConfig, error) {
	files, err := libcni.ConfFiles(dir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		return nil, fmt.Errorf("cni: read the configuration directory %s: %w", dir, err)
	}
	sort.Strings(files)
	var skipped []error
	for _, f := range files {
		n, err := loadFile(f)
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		return &DirConfig{Network: n, File: f, Skipped: skipped}, nil
	}
	return &DirConfig{Skipped: skipped}, fmt.Errorf("%w in %s%s", ErrNoConfig, dir, skippedNote(skipped))
}

func skippedNote(skipped []error) string {
	if len(skipped) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" (skipped: ")
	for i, err := range skipped {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	b.WriteString(")")
	return b.String()
}

// LoadFile loads one CNI configuration file: a .conflist, or a
// single-plugin .conf or .json.
func LoadFile(path string) (*Network, error) { return loadFile(path) }

func loadFile(path string) (*Network, error) {
	var l *libcni.NetworkConfigList
	var err error
	if strings.HasSuffix(path, ".conflist") {
		l, err = libcni.ConfListFromFile(path)
	} else {
		var c *libcni.NetworkConfig
		if c, err = libcni.ConfFromFile(path); err == nil {
			if c.Network.Type == "" {
				err = errors.New("no plugin type")
			} else {
				l, err = libcni.ConfListFromConf(c)
			}
		}
	}
	if err == nil && len(l.Plugins) == 0 {
		err = errors.New("no plugins")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &Network{list: l}, nil
}

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
	// Args are CNI_ARGS (the Kubernetes pod's K8S_POD_NAME and the like).
	Args [][2]string
	// CapabilityArgs are the runtime's arguments to plugins that declare
	// the capability: "portMappings", "ips", "mac".
	CapabilityArgs map[string]any
}

func (a Attachment) runtimeConf() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: a.ContainerID, NetNS: a.NetNS, IfName: a.IfName, Args: a.Args, CapabilityArgs: a.CapabilityArgs}
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

// CachedNetwork is the network (as its conflist was at the ADD) and the
// arguments of the last ADD of a to the network named name, as libcni
// cached them; nil when nothing is cached.
func (c *Client) CachedNetwork(name string, a Attachment) (*Network, Attachment, error) {
	conf, rt, err := c.cni.GetNetworkListCachedConfig(&libcni.NetworkConfigList{Name: name}, a.runtimeConf())
	if err != nil || conf == nil {
		return nil, a, err
	}
	n, err := ParseNetwork(conf)
	if err != nil {
		return nil, a, err
	}
	a.Args, a.CapabilityArgs = rt.Args, rt.CapabilityArgs
	return n, a, nil
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
		if n == "" || strings.ContainsRune(n, '/') {
			return fmt.Errorf("CNI plugin type %q: not a plugin's name", n)
		}
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
