package network

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/berth-dev/berth/internal/network/cni"
)

// warmPlugins are the plugins whose attachment may be made ahead of the
// pod it is for (the engine's warm pod networks): the reference plugins
// that read nothing of the pod (none of them reads CNI_ARGS' K8S_POD_*
// keys) and, with no published ports, take nothing from it either. A
// network add-on's plugins (flannel, calico, cilium...) key what they make
// to the pod's name, and are never made ahead.
var warmPlugins = []string{"bridge", "host-local", "loopback", "portmap"}

// WarmCNIKey says whether an attachment to ref, whose configuration
// loaded as n, may be made ahead of its pod, and names the configuration
// (its file, plugin directories and content): a spare made for one key
// is right only for a pod of the same key, so a file rewritten since the
// spare was made does not match.
func WarmCNIKey(n *cni.Network, ref *CNIRef) (key string, ok bool) {
	if n.Name() != ref.Name {
		return "", false
	}
	for _, t := range append(n.PluginTypes(), n.IPAMTypes()...) {
		if t != "" && !slices.Contains(warmPlugins, t) {
			return "", false
		}
	}
	sum := sha256.Sum256(n.Bytes())
	return "cni\x00" + ref.File + "\x00" + strings.Join(ref.BinDirs, "\x00") + "\x00" + hex.EncodeToString(sum[:]), true
}
