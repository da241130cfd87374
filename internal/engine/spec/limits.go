package spec

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime/oci"
)

// rlimInfinity is RLIM_INFINITY.
const rlimInfinity = ^uint64(0)

// defaultNofile is docker's default RLIMIT_NOFILE, soft and hard.
const defaultNofile = 1048576

// ulimitNames maps the names `docker run --ulimit` takes ("nofile") to
// their RLIMIT_* names, derived from oci's table.
var ulimitNames = func() map[string]string {
	m := map[string]string{}
	for _, typ := range oci.KnownRlimits() {
		m[strings.ToLower(strings.TrimPrefix(typ, "RLIMIT_"))] = typ
	}
	return m
}()

type ulimit struct {
	name       string // docker's short name
	typ        string // RLIMIT_*
	soft, hard uint64
	requested  bool // by the user, not docker's default
}

func parseLimitValue(s string) (uint64, error) {
	if s == "-1" || s == "unlimited" {
		return rlimInfinity, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

func fmtLimit(v uint64) string {
	if v == rlimInfinity {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// parseUlimit parses "name=soft[:hard]".
func parseUlimit(s string) (ulimit, error) {
	name, val, ok := strings.Cut(s, "=")
	if !ok || name == "" || val == "" {
		return ulimit{}, fmt.Errorf("ulimit %q: want name=soft[:hard], such as nofile=1024:2048", s)
	}
	typ, known := ulimitNames[name]
	if !known {
		names := make([]string, 0, len(ulimitNames))
		for n := range ulimitNames {
			names = append(names, n)
		}
		slices.Sort(names)
		return ulimit{}, fmt.Errorf("ulimit %q: unknown limit %q (known: %s)", s, name, strings.Join(names, ", "))
	}
	softS, hardS, hasHard := strings.Cut(val, ":")
	soft, err := parseLimitValue(softS)
	if err != nil {
		return ulimit{}, fmt.Errorf("ulimit %q: soft limit %q is not a number", s, softS)
	}
	hard := soft
	if hasHard {
		if hard, err = parseLimitValue(hardS); err != nil {
			return ulimit{}, fmt.Errorf("ulimit %q: hard limit %q is not a number", s, hardS)
		}
	}
	if soft > hard {
		return ulimit{}, fmt.Errorf("ulimit %q: soft limit %s is above the hard limit %s", s, fmtLimit(soft), fmtLimit(hard))
	}
	return ulimit{name: name, typ: typ, soft: soft, hard: hard}, nil
}

// rlimits returns docker's default RLIMIT_NOFILE overridden by the
// --ulimit list, each clamped to the host's hard limit.
func rlimits(list []string, host func(int) (uint64, uint64, error)) ([]specs.POSIXRlimit, []Warning, error) {
	want := []ulimit{{name: "nofile", typ: "RLIMIT_NOFILE", soft: defaultNofile, hard: defaultNofile}}
	for _, s := range list {
		u, err := parseUlimit(s)
		if err != nil {
			return nil, nil, err
		}
		u.requested = true
		if i := slices.IndexFunc(want, func(w ulimit) bool { return w.typ == u.typ }); i >= 0 {
			want[i] = u
		} else {
			want = append(want, u)
		}
	}
	var out []specs.POSIXRlimit
	var warns []Warning
	for _, u := range want {
		res, _ := oci.RlimitByName(u.typ)
		_, max, err := host(res)
		if err != nil {
			return nil, nil, fmt.Errorf("ulimit %s: read the host's %s: %w", u.name, u.typ, err)
		}
		soft, hard := u.soft, u.hard
		if hard > max {
			hard = max
			soft = min(soft, hard)
			topic := "ulimit"
			if !u.requested {
				topic = TopicDefaultUlimit
			}
			warns = append(warns, Warning{Topic: topic, Message: fmt.Sprintf(
				"ulimit %s=%s:%s clamped to %s:%s (the host's hard limit; berth lacks CAP_SYS_RESOURCE to raise it)",
				u.name, fmtLimit(u.soft), fmtLimit(u.hard), fmtLimit(soft), fmtLimit(hard))})
		}
		out = append(out, specs.POSIXRlimit{Type: u.typ, Soft: soft, Hard: hard})
	}
	return out, warns, nil
}

// defaultCaps is docker's default capability set.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// hostCaps lists the capabilities both the host kernel and berth know.
func hostCaps(lastCap func() (int, error)) []string {
	known := oci.KnownCapabilities()
	if last, err := lastCap(); err == nil && last >= 0 && last < len(known)-1 {
		known = known[:last+1]
	}
	return known
}

// PrivilegedCapabilities are what a privileged exec's process gets (docker
// exec --privileged): every capability the host's kernel knows that berth
// itself holds, as for a --privileged container, and the warning naming
// those it cannot give.
func PrivilegedCapabilities() ([]string, []Warning) {
	caps, warns, _ := clampToBounding(hostCaps(hostLastCap), nil, hostBounding)
	return caps, warns
}

// clampToBounding drops the capabilities berth itself cannot hold (not
// in its bounding set: a host that took CAP_SYS_RESOURCE from root, as
// this project's machines do), which the runtime's capset would refuse
// for the whole container. One named by --cap-add is an error; one that
// came with --privileged or --cap-add ALL goes, with a warning.
func clampToBounding(caps, add []string, bounding func() (uint64, error)) ([]string, []Warning, error) {
	set, err := bounding()
	if err != nil {
		return caps, nil, nil // unknown: the runtime will say
	}
	named, _, _ := normCaps("--cap-add", add)
	var kept, dropped []string
	for _, c := range caps {
		n, ok := oci.CapabilityByName(c)
		if !ok || n >= 64 || set&(1<<uint(n)) != 0 {
			kept = append(kept, c)
			continue
		}
		if slices.Contains(named, c) {
			return nil, nil, fmt.Errorf("--cap-add %s: berth itself does not hold it (it is not in berth's capability bounding set), so no container can", c)
		}
		dropped = append(dropped, c)
	}
	if len(dropped) == 0 {
		return kept, nil, nil
	}
	return kept, []Warning{{Topic: TopicBoundingCaps, Message: fmt.Sprintf("%s: not in berth's own capability bounding set, so the container runs without it", strings.Join(dropped, ", "))}}, nil
}

// normCaps canonicalises names to CAP_X, reporting whether ALL was listed.
func normCaps(flag string, names []string) (caps []string, all bool, err error) {
	for _, n := range names {
		if strings.EqualFold(n, "ALL") {
			all = true
			continue
		}
		num, ok := oci.CapabilityByName(n)
		if !ok {
			return nil, false, fmt.Errorf("%s %q: unknown capability (use a name such as NET_ADMIN or CAP_NET_ADMIN, or ALL)", flag, n)
		}
		caps = append(caps, oci.CapabilityName(num))
	}
	return caps, all, nil
}

// capabilities applies docker's rules: start from the default set (all of
// the host's when privileged); with --cap-drop ALL keep only --cap-add;
// with --cap-add ALL take all but --cap-drop; otherwise drop, then add
// (an add beats a drop of the same name).
func capabilities(privileged bool, add, drop []string, lastCap func() (int, error)) ([]string, error) {
	adds, addAll, err := normCaps("--cap-add", add)
	if err != nil {
		return nil, err
	}
	drops, dropAll, err := normCaps("--cap-drop", drop)
	if err != nil {
		return nil, err
	}
	all := hostCaps(lastCap)
	base := defaultCaps
	if privileged {
		base = all
	}
	var caps []string
	switch {
	case dropAll:
		caps = adds
		if addAll {
			caps = all
		}
	case addAll:
		for _, c := range all {
			if !slices.Contains(drops, c) {
				caps = append(caps, c)
			}
		}
	default:
		for _, c := range base {
			if !slices.Contains(drops, c) {
				caps = append(caps, c)
			}
		}
		caps = append(caps, adds...)
	}
	slices.SortFunc(caps, func(a, b string) int {
		x, _ := oci.CapabilityByName(a)
		y, _ := oci.CapabilityByName(b)
		return x - y
	})
	return slices.Compact(caps), nil
}
