package events

import (
	"fmt"
	"strings"
)

// Filter is `events --filter`: values of one key match if any matches,
// and every key given must match (docker's rule).
type Filter map[string][]string

// filterKeys are the keys berth's CLI accepts: docker's. Of the swarm's
// and the plugins' (daemon, plugin, node, service, secret, config), a
// value matches an actor's ID or name by prefix, as docker's does, so
// they match no event of berth's but the daemon's; scope=local matches
// every event, scope=swarm none.
var filterKeys = map[string]bool{"type": true, "event": true, "container": true, "image": true, "label": true, "network": true, "volume": true,
	"scope": true, "daemon": true, "plugin": true, "node": true, "service": true, "secret": true, "config": true}

// ParseFilter reads key=value arguments.
func ParseFilter(args []string) (Filter, error) {
	f := Filter{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("--filter %q: use KEY=VALUE", a)
		}
		k = strings.ToLower(k)
		if !filterKeys[k] {
			return nil, fmt.Errorf("--filter %q: unknown key %q (type, event, container, image, label, network, volume, scope, daemon, plugin, node, service, secret, config)", a, k)
		}
		f[k] = append(f[k], v)
	}
	return f, nil
}

// Match reports whether m passes the filter: every key holds, by one of
// its values, except label, whose values must all hold (as docker's: two
// label= filters are two conditions, not alternatives).
func (f Filter) Match(m Message) bool {
	for k, vals := range f {
		if k == "label" {
			for _, v := range vals {
				if !f.matchOne(k, v, m) {
					return false
				}
			}
			continue
		}
		ok := false
		for _, v := range vals {
			if f.matchOne(k, v, m) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// stripTag drops a reference's tag or digest (docker matches image=NAME
// against NAME:TAG too).
func stripTag(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}

func (f Filter) matchOne(k, v string, m Message) bool {
	a := m.Actor.Attributes
	switch k {
	case "scope":
		return v == "local"
	case "daemon", "plugin", "node", "service", "secret", "config":
		return strings.HasPrefix(m.Actor.ID, v) || a["name"] != "" && strings.HasPrefix(a["name"], v)
	case "type":
		return m.Type == v
	case "event":
		action, _, _ := strings.Cut(m.Action, ":")
		return action == v || m.Action == v
	case "container":
		return m.Type == TypeContainer && (strings.HasPrefix(m.Actor.ID, v) || a["name"] == v) ||
			m.Type == TypeNetwork && (a["container"] == v || strings.HasPrefix(a["container"], v))
	case "image":
		return a["image"] == v || stripTag(a["image"]) == v || m.Type == TypeImage && (m.Actor.ID == v || a["name"] == v || strings.HasPrefix(strings.TrimPrefix(m.Actor.ID, "sha256:"), strings.TrimPrefix(v, "sha256:")))
	case "label":
		lk, lv, hasValue := strings.Cut(v, "=")
		got, ok := a[lk]
		return ok && (!hasValue || got == lv)
	case "network":
		return m.Type == TypeNetwork && (m.Actor.ID == v || a["name"] == v)
	case "volume":
		return m.Type == TypeVolume && m.Actor.ID == v
	}
	// A key docker does not know either: dockerd ignores it.
	return true
}
