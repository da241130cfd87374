// Package archive decompresses OCI/Docker layer blobs and applies the
// layer tar streams to a directory.
//
// # Compression
//
// DecompressStream sniffs gzip and zstd by their magic bytes (anything
// else is passed through as a plain tar; xz and bzip2 are refused).
// MediaTypeCompression maps layer media types to a Compression. The zstd
// decoder runs single-threaded in low-memory mode, because layers are
// already unpacked in parallel; closing the returned reader releases it.
//
// # Confinement
//
// Apply never creates, writes, removes, chmods, chowns, links or sets
// xattrs on anything outside root, whatever the tar contains:
//
//   - Entry names are cleaned. A leading "/" is dropped ("/etc/x" means
//     "etc/x", as docker does); a name that is empty, contains NUL, or
//     whose ".." components climb above root is refused with an error
//     wrapping ErrUnsafeEntry. Only a directory entry may name the root
//     itself ("." or "/"); it updates root's metadata.
//   - The parent directory of every entry is opened with openat2(2) and
//     RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS relative to an fd of root, so
//     symlinks that the layer itself planted (evil -> /etc, up -> ../..)
//     are resolved as if root were "/": "evil/passwd" lands in
//     root/etc/passwd, never in the host's /etc. The kernel does this
//     atomically, so it also holds against concurrent renames, which a
//     user-space path check (EvalSymlinks + prefix compare) does not. On
//     kernels without openat2 (ENOSYS) an equivalent resolver walks one
//     component at a time with O_PATH|O_NOFOLLOW, expanding symlinks
//     itself and clamping ".." at root.
//   - The final component is only ever touched by *at(2) calls on the
//     parent fd with no-follow semantics: O_CREAT|O_EXCL|O_NOFOLLOW for
//     files, mkdirat/mknodat/symlinkat/linkat (which never follow),
//     fchownat/utimensat with AT_SYMLINK_NOFOLLOW; mode and xattrs are set
//     through an fd of the node itself (for devices and FIFOs an O_PATH fd
//     reached through its /proc/self/fd magic link). Symlinks are never
//     chmod'ed; their xattrs are set with lsetxattr on
//     /proc/self/fd/<parent>/<name>.
//   - Hard link targets are resolved in root the same way, must already
//     exist and must not be directories; linkat does not follow a
//     symlink target.
//   - overlayfs xattrs in the tar (trusted.overlay.*, user.overlay.*) are
//     silently skipped and counted in Stats.XattrsSkipped: they could forge
//     whiteouts, opaque dirs or redirects in the merged view. Whiteouts
//     must be spelled the OCI way (.wh. files).
//   - Device nodes are allowed unless Options.NoDevices is set.
//
// # Whiteouts
//
// In OverlayWhiteouts mode (default) root holds this layer only and is
// later used as an overlayfs lowerdir: ".wh.NAME" becomes a character
// device 0/0 named NAME (mode 0, owner 0:0 after Options.IDMap), and
// ".wh..wh..opq" in D sets trusted.overlay.opaque="y" on D, creating D
// (0755) if needed. In ApplyWhiteouts mode root already holds the lower
// layers merged: ".wh.NAME" removes NAME recursively (unless this same
// layer wrote NAME: a whiteout hides only lower layers), and
// ".wh..wh..opq" removes everything below D that this layer did not
// write. Other ".wh..wh." names (aufs metadata) are skipped in both modes.
// "Written by this layer" is tracked by cleaned entry name (plus the
// parent directories Apply created), so it is matched lexically: an opaque
// marker reached through a symlink only spares children whose names
// match. Whiteouts in ApplyWhiteouts mode never create anything.
//
// # Replacement
//
// A later entry for an existing path replaces it: a non-directory
// replaces whatever is there (a directory recursively), a directory over
// a directory keeps it and updates its metadata, a directory over a
// non-directory replaces it. Missing parent directories are created 0755.
//
// # Metadata
//
// Apply needs /proc mounted (it names nodes by /proc/self/fd to chmod
// devices and set xattrs on devices, FIFOs and symlinks) and, for
// ownership, mknod and trusted.* xattrs, CAP_CHOWN/CAP_MKNOD/CAP_SYS_ADMIN.
//
// Owner (lchown, through Options.IDMap), then mode including
// setuid/setgid/sticky (chmod after chown, which would clear them), then
// xattrs from SCHILY.xattr.* PAX records (after chown, which clears
// security.capability), then atime/mtime with nanoseconds. Directory times
// are set at the very end, deepest first, after everything inside them
// was written.
//
// Sparse entries (GNU sparse, old or PAX) are written with holes; their
// logical size is capped at 16 GiB because holes cost no input bytes.
//
// # Stream handling
//
// Apply reads an uncompressed tar. After the end-of-archive marker it
// reads r to EOF, so a caller hashing the stream for the diffID sees every
// byte; a read error anywhere (including a truncated or corrupt
// compressed stream underneath) fails the apply. On success root is
// flushed with a single syncfs(2) unless Options.NoSync; there is no
// per-file fsync. Cancelling ctx stops the apply between entries and
// between 1 MiB chunks of a file, returning ctx.Err(). A failed apply
// leaves root partially written; callers discard the snapshot.
//
// Apply is Linux-only; elsewhere it returns ErrNotSupported.
package archive
