package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// WhiteoutMode selects how whiteout entries of a layer are materialised.
type WhiteoutMode int

const (
	// OverlayWhiteouts (the zero value) writes whiteouts in overlayfs form:
	// root is an empty directory receiving this layer only, later used as
	// an overlayfs lowerdir. ".wh.NAME" becomes a 0/0 character device
	// NAME and ".wh..wh..opq" sets trusted.overlay.opaque="y" on its
	// directory.
	OverlayWhiteouts WhiteoutMode = iota
	// ApplyWhiteouts applies whiteouts to a root that already holds the
	// lower layers merged: ".wh.NAME" removes NAME, ".wh..wh..opq" removes
	// every child of its directory that this layer did not write.
	ApplyWhiteouts
)

// String returns "overlay" or "apply".
func (m WhiteoutMode) String() string {
	switch m {
	case OverlayWhiteouts:
		return "overlay"
	case ApplyWhiteouts:
		return "apply"
	default:
		return fmt.Sprintf("WhiteoutMode(%d)", int(m))
	}
}

// IDMapFunc maps a uid/gid pair from the tar to the pair written on disk
// (for user namespaces). It is called for every entry that is chowned.
type IDMapFunc func(uid, gid int) (int, int, error)

// Options controls Apply. The zero value is safe and is the usual choice
// for unpacking a layer into its own snapshot directory.
type Options struct {
	// Whiteouts selects the whiteout mode; the default is OverlayWhiteouts.
	Whiteouts WhiteoutMode
	// IDMap, if non-nil, maps tar uid/gid to on-disk uid/gid. nil is the
	// identity.
	IDMap IDMapFunc
	// NoDevices refuses character and block device entries (the apply
	// fails with ErrUnsafeEntry). Overlay whiteout devices that Apply
	// itself creates are not affected. FIFOs are always allowed.
	NoDevices bool
	// NoSync skips the single syncfs(2) on root that Apply performs after
	// a successful apply.
	NoSync bool
}

// Stats describes what Apply did.
type Stats struct {
	Entries   int   // tar headers processed (including skipped ones)
	Dirs      int   // directory entries
	Files     int   // regular files
	Symlinks  int   // symbolic links
	Hardlinks int   // hard links
	Devices   int   // character and block devices (from the tar)
	FIFOs     int   // named pipes
	Whiteouts int   // ".wh.NAME" entries
	Opaques   int   // ".wh..wh..opq" entries
	Skipped   int   // entries deliberately ignored (aufs metadata, global headers)
	FileBytes int64 // bytes written to regular files (holes of sparse files excluded)
	// XattrsSkipped counts overlayfs xattrs (trusted.overlay.*,
	// user.overlay.*) found in the tar and not applied.
	XattrsSkipped int
	// StreamBytes is the total number of bytes read from the input,
	// including padding and anything after the end-of-archive marker.
	StreamBytes int64
}

// ErrUnsafeEntry is wrapped by every error about an entry that tries to
// leave the layer root or is otherwise refused as hostile.
var ErrUnsafeEntry = errors.New("unsafe layer entry")

// ErrNotSupported is returned by Apply on operating systems other than
// Linux.
var ErrNotSupported = errors.New("archive: applying layers is not supported on this OS")

// EntryError describes a failure applying one tar entry.
type EntryError struct {
	Path string // entry name as it appears in the tar
	Op   string // what was being done ("resolve", "create", "chown", ...)
	Err  error
}

func (e *EntryError) Error() string {
	if e.Op == "" {
		return fmt.Sprintf("archive: entry %q: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("archive: entry %q: %s: %v", e.Path, e.Op, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

func unsafeErr(name, op, format string, args ...any) error {
	return &EntryError{Path: name, Op: op, Err: fmt.Errorf("%w: "+format, append([]any{ErrUnsafeEntry}, args...)...)}
}

// cleanName turns a tar entry name into a slash-separated path relative to
// the layer root. Leading slashes are dropped ("/etc/x" is "etc/x"); names
// that are empty, contain NUL, or whose ".." components would climb above
// the root are rejected. The root itself is ".".
func cleanName(name string) (string, error) {
	if name == "" {
		return "", unsafeErr(name, "resolve", "empty name")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", unsafeErr(name, "resolve", "name contains a NUL byte")
	}
	c := path.Clean(strings.TrimLeft(name, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", unsafeErr(name, "resolve", "path escapes the layer root")
	}
	return c, nil
}

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// isOverlayXattr reports whether an xattr name belongs to overlayfs, whose
// xattrs encode whiteouts, opaque dirs, redirects and metacopy: a layer
// that could set them could forge a different merged view, so they are
// never taken from the tar.
func isOverlayXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
}

// CountingReader counts in N the bytes read through it from R (a tar
// stream's size as it is applied or sent).
type CountingReader struct {
	R io.Reader
	N int64
}

func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	return n, err
}

// Apply reads an uncompressed tar stream from r and writes its entries
// under root, which must be an existing directory. See the package
// documentation for the guarantees. After the end of the archive Apply
// reads r to EOF so that a caller hashing the stream sees every byte.
func Apply(ctx context.Context, root string, r io.Reader, opts Options) (Stats, error) {
	if opts.Whiteouts != OverlayWhiteouts && opts.Whiteouts != ApplyWhiteouts {
		return Stats{}, fmt.Errorf("archive: invalid whiteout mode %v", opts.Whiteouts)
	}
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	return apply(ctx, root, r, opts)
}
