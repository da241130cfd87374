package spec

// ExecUser is the identity a process gets from a docker --user value
// resolved against an image's (or a running container's) /etc/passwd and
// /etc/group.
type ExecUser struct {
	UID, GID       uint32
	AdditionalGids []uint32
	// Home is the user's home directory from passwd ("/" without one).
	Home string
}

// ResolveUser resolves user ("", "name", "uid", "name:group", "uid:gid")
// inside rootfs exactly as Generate does for a container's process: the
// files are read with every path component resolved inside rootfs, a
// numeric uid needs no passwd entry, a name must have one, and without a
// group the groups listing the user become additional gids. rootfs may be
// a running container's /proc/<pid>/root.
func ResolveUser(rootfs, user string) (ExecUser, error) {
	u, err := resolveUser(rootfs, user)
	if err != nil {
		return ExecUser{}, err
	}
	return ExecUser{UID: u.uid, GID: u.gid, AdditionalGids: u.additionalGids(), Home: u.home}, nil
}
