//go:build linux

package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/image/archive"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/snapshot"
	"golang.org/x/sys/unix"
)

// cp and export of a container whose files are in a guest (a VM): the
// container's half of each runs there, as this binary's file helper
// (GuestFilesMain, which the guest agent starts for the driver's
// runtime.GuestFiles), over a root the agent opened: the container's as
// its processes see it (cp) or its root overlay alone (export). The
// host's half, and docker's rules, are those of a local copy: the tree
// code below is the same on both sides; only the tar stream between the
// two halves crosses the VM's channel. See docs/architecture.md, "cp and
// export of a VM container".

// Exit codes of the file helper, so that the host gives the error its
// kind back.
const (
	guestFilesFailed   = 1
	guestFilesNotFound = 2
	guestFilesInvalid  = 3
	guestFilesReadOnly = 4
)

// GuestFilesMain runs one operation of the container's half of cp or
// export on ROOT; args: OP ROOT NAME ARGS... (NAME names the container
// in messages). It writes a tar stream or an answer on stdout, reads
// one from stdin, and says what failed on stderr with an exit code
// telling its kind.
//
//	stat    ROOT NAME SRC FOLLOW          -> "dir" or "other"
//	archive ROOT NAME SRC FOLLOW TARNAME SAFE -> tar (TARNAME "": a directory's contents)
//	dest    ROOT NAME SRC SRCISDIR DST    -> "INTO\nNAME\n" (docker's rules for DST)
//	extract ROOT NAME DIR ARCHIVE         <- tar, into the directory DIR
//	export  ROOT                          -> tar of the whole root
//	diff    UPPER LOWER...                -> JSON of the changes (snapshot.ChangesOf)
//	layer   UPPER SKIP...                 -> the changes as a layer tar (snapshot.WriteDiffOf), without SKIP paths
func GuestFilesMain(args []string) int {
	err := guestFiles(context.Background(), args, os.Stdin, os.Stdout)
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, err)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return guestFilesNotFound
	case errors.Is(err, ErrInvalid):
		return guestFilesInvalid
	case errors.Is(err, ErrInvalidState):
		return guestFilesReadOnly
	}
	return guestFilesFailed
}

func guestFiles(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: OP ROOT NAME ARGS...: %w", ErrInvalid)
	}
	op, rootPath := args[0], args[1]
	if op == "diff" {
		// The agent gives the root overlay's upper and lower
		// directories, not a root.
		changes, err := snapshot.ChangesOf(args[1], args[2:])
		if err != nil {
			return err
		}
		return json.NewEncoder(out).Encode(changes)
	}
	if op == "layer" {
		skip := map[string]bool{}
		for _, p := range args[2:] {
			skip[p] = true
		}
		bw := bufio.NewWriterSize(out, 256<<10)
		if err := snapshot.WriteDiffOf(args[1], bw, func(p string) bool { return skip[p] }); err != nil {
			return err
		}
		return bw.Flush()
	}
	root, err := os.OpenFile(rootPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer root.Close()
	if op == "export" {
		bw := bufio.NewWriterSize(out, 256<<10)
		if err := exportRoot(ctx, root, nil, bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	if len(args) < 3 {
		return fmt.Errorf("%s: no container name: %w", op, ErrInvalid)
	}
	name, rest := args[2], args[3:]
	t := &tree{root: root, confined: true}
	where := func(p string) string { return name + ":" + p }
	need := map[string]int{"stat": 2, "archive": 4, "dest": 3, "extract": 2}[op]
	if need == 0 || len(rest) != need {
		return fmt.Errorf("file helper: %s with %d arguments: %w", op, len(rest), ErrInvalid)
	}
	switch op {
	case "stat":
		n, err := t.source(parseCpPath(rest[0]), rest[1] == "1", where)
		if err != nil {
			return err
		}
		defer n.close()
		if n.isDir() {
			_, err = io.WriteString(out, "dir")
		} else {
			_, err = io.WriteString(out, "other")
		}
		return err
	case "archive":
		n, err := t.source(parseCpPath(rest[0]), rest[1] == "1", where)
		if err != nil {
			return err
		}
		defer n.close()
		var safety *hostSafety
		if rest[3] == "1" {
			safety = &hostSafety{}
		}
		bw := bufio.NewWriterSize(out, 256<<10)
		if err := writeArchive(ctx, n, rest[2], bw, safety, nil); err != nil {
			return err
		}
		return bw.Flush()
	case "dest":
		into, n, err := destination(t, rest[1] == "1", parseCpPath(rest[0]), parseCpPath(rest[2]), func(p string) string { return p }, where)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n%s\n", into, n)
		return err
	case "extract":
		var idmap archive.IDMapFunc
		if rest[1] != "1" {
			idmap = func(int, int) (int, int, error) { return 0, 0, nil }
		}
		_, err := extractInto(ctx, t, parseCpPath(rest[0]), in, idmap, where)
		return err
	}
	return nil
}

// guestFilesOf returns the handle on a running container's files in its
// guest, nil when its files are on this host (or it does not run).
func (e *Engine) guestFilesOf(ctx context.Context, c *Container) runtime.GuestFiles {
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		return nil
	}
	rc, err := e.driver.Load(ctx, c.ID)
	if err != nil {
		return nil
	}
	gf, ok := rc.(runtime.GuestFiles)
	if !ok || rc.Status() == runtime.StatusStopped {
		return nil
	}
	return gf
}

// guestCall runs the file helper in the guest and gives its failure the
// kind it reported.
func guestCall(ctx context.Context, gf runtime.GuestFiles, args []string, in io.Reader, out io.Writer) error {
	code, msg, err := gf.GuestFiles(ctx, args, in, out)
	if err != nil {
		return err
	}
	msg = strings.TrimSpace(msg)
	switch code {
	case 0:
		return nil
	case guestFilesNotFound:
		return notFound(msg)
	case guestFilesInvalid:
		return fmt.Errorf("%s: %w", msg, ErrInvalid)
	case guestFilesReadOnly:
		return fmt.Errorf("%s: %w", msg, ErrInvalidState)
	}
	if msg == "" {
		msg = "the file helper in the guest exited " + strconv.Itoa(code)
	}
	return errors.New(msg)
}

func flag01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// copyFromGuest is CopyFromContainer for a container whose files are in
// a guest: the source is looked at and archived there, docker's rules for
// the destination and the extraction run here.
func (e *Engine) copyFromGuest(ctx context.Context, c *Container, gf runtime.GuestFiles, sp cpPath, src, dst string, o CopyOptions, w io.Writer) (int64, error) {
	var kind strings.Builder
	if err := guestCall(ctx, gf, []string{"stat", c.Name, src, flag01(o.FollowLink)}, nil, &kind); err != nil {
		return 0, err
	}
	isDir := kind.String() == "dir"
	if dst == "-" {
		name := archiveTopName(sp, isDir)
		cw := &countingWriter{w: w}
		err := guestCall(ctx, gf, []string{"archive", c.Name, src, flag01(o.FollowLink), name, "0"}, nil, cw)
		return cw.n, err
	}
	dp, ht, err := hostSide(dst)
	if err != nil {
		return 0, err
	}
	defer ht.root.Close()
	into, name, err := destination(ht, isDir, sp, dp, func(p string) string { return c.Name + ":" + p }, hostWhere)
	if err != nil {
		return 0, err
	}
	dd, err := ht.open(into, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return 0, err
	}
	defer dd.Close()
	var idmap archive.IDMapFunc
	if !o.Archive {
		uid, gid := os.Getuid(), os.Getgid()
		idmap = func(int, int) (int, int, error) { return uid, gid, nil }
	}
	return pipeTar(func(w io.Writer) error {
		return guestCall(ctx, gf, []string{"archive", c.Name, src, flag01(o.FollowLink), name, flag01(!o.Archive)}, nil, w)
	}, func(r io.Reader) error {
		_, err := ht.apply(ctx, dd, r, idmap)
		return err
	})
}

// copyToGuest is CopyToContainer for a container whose files are in a
// guest: the source is archived here, docker's rules for the destination
// and the extraction run there.
func (e *Engine) copyToGuest(ctx context.Context, c *Container, gf runtime.GuestFiles, src, dst string, o CopyOptions, r io.Reader) (int64, error) {
	if src == "-" {
		cr := &archive.CountingReader{R: r}
		err := guestCall(ctx, gf, []string{"extract", c.Name, dst, flag01(o.Archive)}, cr, io.Discard)
		return cr.N, err
	}
	sp, ht, err := hostSide(src)
	if err != nil {
		return 0, err
	}
	defer ht.root.Close()
	sn, err := ht.source(sp, o.FollowLink, hostWhere)
	if err != nil {
		return 0, err
	}
	defer sn.close()
	var answer strings.Builder
	if dst == "" {
		dst = "/"
	}
	if err := guestCall(ctx, gf, []string{"dest", c.Name, src, flag01(sn.isDir()), dst}, nil, &answer); err != nil {
		return 0, err
	}
	into, name, _ := strings.Cut(strings.TrimSuffix(answer.String(), "\n"), "\n")
	return pipeTar(func(w io.Writer) error {
		return writeArchive(ctx, sn, name, w, nil, nil)
	}, func(r io.Reader) error {
		return guestCall(ctx, gf, []string{"extract", c.Name, into, flag01(o.Archive)}, r, io.Discard)
	})
}

// pipeTar runs write and read on the two ends of a pipe and returns the
// bytes that went through, and the first failure that explains the rest.
func pipeTar(write func(io.Writer) error, read func(io.Reader) error) (int64, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	cw := &countingWriter{w: pw}
	go func() {
		err := write(cw)
		pw.CloseWithError(err)
		done <- err
	}()
	rerr := read(pr)
	if rerr != nil {
		pr.CloseWithError(rerr)
	} else {
		io.Copy(io.Discard, pr)
	}
	werr := <-done
	switch {
	case werr != nil && (rerr == nil || errors.Is(rerr, werr)):
		return cw.n, werr
	case rerr != nil:
		return cw.n, writeError(rerr)
	}
	return cw.n, nil
}
