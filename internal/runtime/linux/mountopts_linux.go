package linux

import (
	"sort"
	"strings"

	"github.com/berth-dev/berth/internal/mountopt"
	"golang.org/x/sys/unix"
)

// mountOptions is config.json's mounts[].options split the way mount(2)
// wants them.
type mountOptions struct {
	flags     uintptr   // MS_* flags for the mount itself
	clear     uintptr   // flags an option explicitly turned off (rw, suid, ...)
	propagate []uintptr // MS_SHARED etc., applied after the mount
	data      []string  // filesystem-specific options
	recAttr   unix.MountAttr
	recSet    bool
}

// mountFlagOptions are the options that are mount(2) flags (shared with
// the engine's volume mounts).
var mountFlagOptions = mountopt.Flags

var propagationOptions = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// recursiveOptions are the mount_setattr(2) attributes of "rro" and friends.
var recursiveOptions = map[string]struct {
	clear bool
	attr  uint64
}{
	"rro":          {false, unix.MOUNT_ATTR_RDONLY},
	"rrw":          {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid":      {false, unix.MOUNT_ATTR_NOSUID},
	"rsuid":        {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev":       {false, unix.MOUNT_ATTR_NODEV},
	"rdev":         {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec":      {false, unix.MOUNT_ATTR_NOEXEC},
	"rexec":        {true, unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":  {false, unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":    {true, unix.MOUNT_ATTR_NODIRATIME},
	"rnoatime":     {false, unix.MOUNT_ATTR_NOATIME},
	"rstrictatime": {false, unix.MOUNT_ATTR_STRICTATIME},
	"rrelatime":    {false, unix.MOUNT_ATTR_RELATIME},
	"rnosymfollow": {false, unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":   {true, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

func parseMountOptions(opts []string) mountOptions {
	var m mountOptions
	for _, o := range opts {
		if f, ok := mountFlagOptions[o]; ok {
			if f.Clear {
				m.flags &^= f.Flag
				m.clear |= f.Flag
			} else {
				m.flags |= f.Flag
			}
			continue
		}
		if p, ok := propagationOptions[o]; ok {
			m.propagate = append(m.propagate, p)
			continue
		}
		if r, ok := recursiveOptions[o]; ok {
			m.recSet = true
			if r.clear {
				m.recAttr.Attr_clr |= r.attr
			} else {
				m.recAttr.Attr_set |= r.attr
			}
			continue
		}
		if o == "tmpcopyup" || o == "idmap" || o == "ridmap" {
			// Handled by name in mountEntry.
			continue
		}
		m.data = append(m.data, o)
	}
	return m
}

func (m mountOptions) dataString() string { return strings.Join(m.data, ",") }

func hasOption(opts []string, name string) bool {
	for _, o := range opts {
		if o == name {
			return true
		}
	}
	return false
}

// MountOptionNames lists every mount option berth understands, for the
// features document.
func MountOptionNames() []string {
	var out []string
	for k := range mountFlagOptions {
		out = append(out, k)
	}
	for k := range propagationOptions {
		out = append(out, k)
	}
	for k := range recursiveOptions {
		out = append(out, k)
	}
	out = append(out, "tmpcopyup")
	sort.Strings(out)
	return out
}
