package spec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

const (
	passwdFile = "/etc/passwd"
	groupFile  = "/etc/group"
	// maxIDFile bounds how much of an image's passwd or group file is read.
	maxIDFile = 4 << 20
)

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// execUser is the resolved identity of the container's process.
type execUser struct {
	uid, gid uint32
	sgids    []uint32
	home     string
}

// readImageFile returns the lines of name inside rootfs; ok is false when
// the file does not exist there.
func readImageFile(rootfs, name string) (lines []string, ok bool, err error) {
	f, err := openInRoot(rootfs, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("read the image's %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("read the image's %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("the image's %s is not a regular file (%s)", name, fi.Mode().Type())
	}
	sc := bufio.NewScanner(io.LimitReader(f, maxIDFile))
	sc.Buffer(make([]byte, 0, 4096), maxIDFile)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return nil, false, fmt.Errorf("read the image's %s: %w", name, err)
	}
	return lines, true, nil
}

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > 1<<31-1 {
		return 0, false
	}
	return uint32(n), true
}

// parsePasswd skips malformed lines, as libc does.
func parsePasswd(lines []string) []passwdEntry {
	var out []passwdEntry
	for _, l := range lines {
		f := strings.Split(l, ":")
		if len(f) < 6 || f[0] == "" {
			continue
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if !ok1 || !ok2 {
			continue
		}
		out = append(out, passwdEntry{name: f[0], uid: uid, gid: gid, home: f[5]})
	}
	return out
}

func parseGroup(lines []string) []groupEntry {
	var out []groupEntry
	for _, l := range lines {
		f := strings.Split(l, ":")
		if len(f) < 3 || f[0] == "" {
			continue
		}
		gid, ok := parseID(f[2])
		if !ok {
			continue
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					g.members = append(g.members, m)
				}
			}
		}
		out = append(out, g)
	}
	return out
}

// resolveUser resolves spec ("", "name", "uid", "user:group") against the
// image's passwd and group files the way docker (runc) does: a numeric uid
// needs no entry (its gid is then 0 and HOME /), a name must have one; the
// primary gid comes from passwd unless a group is given; with no group
// given, the groups listing the user as a member become additional gids.
func resolveUser(rootfs, spec string) (execUser, error) {
	u := execUser{home: "/"}
	userArg, groupArg, hasGroup := strings.Cut(spec, ":")
	if hasGroup && (userArg == "" || groupArg == "") {
		return u, fmt.Errorf("user %q: want name, uid, name:group or uid:gid", spec)
	}
	if userArg == "" {
		userArg = "0"
	}
	pwLines, pwOK, err := readImageFile(rootfs, passwdFile)
	if err != nil {
		return u, fmt.Errorf("user %q: %w", spec, err)
	}
	users := parsePasswd(pwLines)
	uid, numeric := parseID(userArg)
	var name string
	found := false
	for _, p := range users {
		if (numeric && p.uid == uid) || (!numeric && p.name == userArg) {
			u.uid, u.gid, u.home, name, found = p.uid, p.gid, p.home, p.name, true
			break
		}
	}
	if !found {
		if !numeric {
			if !pwOK {
				return u, fmt.Errorf("user %q: the image has no %s to look up %q in; give a numeric uid", spec, passwdFile, userArg)
			}
			return u, fmt.Errorf("user %q: no user %q in the image's %s", spec, userArg, passwdFile)
		}
		u.uid = uid
	}
	if u.home == "" {
		u.home = "/"
	}

	grLines, grOK, err := readImageFile(rootfs, groupFile)
	if err != nil {
		return u, fmt.Errorf("user %q: %w", spec, err)
	}
	groups := parseGroup(grLines)
	if hasGroup {
		if gid, ok := parseID(groupArg); ok {
			u.gid = gid
			return u, nil
		}
		for _, g := range groups {
			if g.name == groupArg {
				u.gid = g.gid
				return u, nil
			}
		}
		if !grOK {
			return u, fmt.Errorf("user %q: the image has no %s to look up group %q in; give a numeric gid", spec, groupFile, groupArg)
		}
		return u, fmt.Errorf("user %q: no group %q in the image's %s", spec, groupArg, groupFile)
	}
	if name == "" {
		return u, nil
	}
	seen := map[uint32]bool{u.gid: true}
	for _, g := range groups {
		for _, m := range g.members {
			if m == name && !seen[g.gid] {
				seen[g.gid] = true
				u.sgids = append(u.sgids, g.gid)
			}
		}
	}
	return u, nil
}

// resolveGroups resolves --group-add values: numbers as they are, names
// in the image's /etc/group.
func resolveGroups(rootfs string, names []string) ([]uint32, error) {
	var groups []groupEntry
	loaded, haveFile := false, false
	var out []uint32
	for _, n := range names {
		if gid, ok := parseID(n); ok {
			out = append(out, gid)
			continue
		}
		if !loaded {
			lines, ok, err := readImageFile(rootfs, groupFile)
			if err != nil {
				return nil, fmt.Errorf("--group-add %s: %w", n, err)
			}
			groups, haveFile, loaded = parseGroup(lines), ok, true
		}
		i := slices.IndexFunc(groups, func(g groupEntry) bool { return g.name == n })
		if i < 0 {
			if !haveFile {
				return nil, fmt.Errorf("--group-add %s: the image has no %s to look the group up in; give a numeric gid", n, groupFile)
			}
			return nil, fmt.Errorf("--group-add %s: unable to find group %s in the image's %s", n, n, groupFile)
		}
		out = append(out, groups[i].gid)
	}
	return out, nil
}
