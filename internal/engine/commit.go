//go:build linux

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/runtime"
)

// CommitOptions are `berth commit`'s.
type CommitOptions struct {
	// Reference names the new image (REPO[:TAG]); empty: the container's
	// image repository at the new digest.
	Reference       string
	Author, Message string
	// Changes are Dockerfile instructions applied to the config: CMD,
	// ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME, STOPSIGNAL.
	Changes []string
	// Pause freezes a running container while its files are read.
	Pause bool
	// Edit, applied after Changes, edits the new image's config object
	// (docker's keys) in place: the Docker API's commit merges the
	// request's config there.
	Edit func(cfg map[string]any) error
}

// Commit makes an image of a container: its image with the container's
// changes as one more layer, and returns the new image's ID.
func (e *Engine) Commit(ctx context.Context, ref string, o CommitOptions) (string, error) {
	change, err := parseChanges(o.Changes)
	if err != nil {
		return "", err
	}
	if o.Edit != nil {
		changes := change
		change = func(cfg map[string]any) error {
			if err := changes(cfg); err != nil {
				return err
			}
			return o.Edit(cfg)
		}
	}
	c, err := e.Get(ctx, ref)
	if err != nil {
		return "", err
	}
	switch c.State.Status {
	case StatusCreating, StatusRemoving, StatusDead:
		return "", fmt.Errorf("container %s is %s: %w", c.Name, c.State.Status, ErrInvalidState)
	}
	recs, err := e.images.Get(ctx, c.Image)
	if err != nil {
		return "", fmt.Errorf("container %s: its image %s: %w", c.Name, ShortID(strings.TrimPrefix(c.Image, "sha256:")), err)
	}
	skip := ownMountPoints(c)
	var writeLayer func(w io.Writer) error
	if e.inVM(c) {
		// Its changes are in its guest, or on its VM's disk, which the
		// host never mounts: the file helper writes the layer there,
		// from the running VM or one booted for its files. A VM is not
		// paused for it, as docker's --pause=false: a paused VM cannot
		// answer (commit of one is refused: unpause it first), so a
		// running one's files are read as they are, and a file its
		// process removes or truncates meanwhile fails the commit,
		// which can then be run again.
		args := append([]string{"layer"}, slices.Sorted(maps.Keys(skip))...)
		writeLayer = func(w io.Writer) error {
			handled, err := e.withGuestFiles(ctx, c, nil, func(gf runtime.GuestFiles) error { return guestCall(ctx, gf, args, nil, w) })
			if err == nil && !handled {
				// It started, or was removed, since: an empty layer
				// would pass for its changes.
				return fmt.Errorf("container %s changed state while commit read its changes: try again: %w", c.Name, ErrInvalidState)
			}
			return err
		}
	} else {
		if o.Pause && c.State.Status == StatusRunning {
			if err := e.Pause(ctx, c.ID); err == nil {
				defer e.Unpause(context.WithoutCancel(ctx), c.ID)
			}
		}
		writeLayer = func(w io.Writer) error { return e.snapshots.WriteDiff(c.ID, w, func(p string) bool { return skip[p] }) }
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeLayer(pw)) }()
	rec, err := e.images.Commit(ctx, image.CommitOptions{
		Base: recs[0], Layer: pr, Change: change, Author: o.Author, Comment: o.Message,
		CreatedBy: "berth commit " + c.Name, Name: o.Reference,
	})
	pr.CloseWithError(err)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", c.Name, err)
	}
	e.emit(c, "commit", map[string]string{"imageID": rec.ID()})
	return rec.ID(), nil
}

// ImportOptions are `berth import`'s.
type ImportOptions struct {
	// Reference names the new image (REPO[:TAG]); empty: it lists
	// untagged (localhost/imported@DIGEST).
	Reference string
	Message   string
	// Changes are Dockerfile instructions, as Commit's.
	Changes []string
	// Platform is the image's os/arch[/variant]; empty for the host's.
	Platform string
}

// Import makes an image of a root file system tarball (plain, gzip or
// zstd) and returns its ID.
func (e *Engine) Import(ctx context.Context, tarball io.Reader, o ImportOptions) (string, error) {
	change, err := parseChanges(o.Changes)
	if err != nil {
		return "", err
	}
	rec, err := e.images.Import(ctx, image.ImportOptions{Tarball: tarball, Change: change, Comment: o.Message, Name: o.Reference, Platform: o.Platform})
	if err != nil {
		return "", err
	}
	return rec.ID(), nil
}

// parseChanges reads --change instructions into an edit of the config's
// "config" object (docker's keys).
func parseChanges(changes []string) (func(map[string]any) error, error) {
	var edits []func(map[string]any)
	for _, ch := range changes {
		instr, arg, _ := strings.Cut(strings.TrimSpace(ch), " ")
		arg = strings.TrimSpace(arg)
		bad := func(why string) error {
			return fmt.Errorf("--change %q: %s: %w", ch, why, ErrInvalid)
		}
		if arg == "" {
			return nil, bad("no value")
		}
		switch strings.ToUpper(instr) {
		case "CMD", "ENTRYPOINT":
			key := map[string]string{"CMD": "Cmd", "ENTRYPOINT": "Entrypoint"}[strings.ToUpper(instr)]
			var argv []string
			if strings.HasPrefix(arg, "[") {
				if err := json.Unmarshal([]byte(arg), &argv); err != nil {
					return nil, bad("not a JSON array of strings")
				}
			} else {
				argv = []string{"/bin/sh", "-c", arg}
			}
			edits = append(edits, func(m map[string]any) { m[key] = toAny(argv) })
		case "ENV":
			kvs, err := keyValues(arg)
			if err != nil {
				return nil, bad(err.Error())
			}
			edits = append(edits, func(m map[string]any) {
				env, _ := m["Env"].([]any)
				for _, kv := range kvs {
					k, _, _ := strings.Cut(kv, "=")
					kept := env[:0:0]
					for _, e := range env {
						if s, _ := e.(string); !strings.HasPrefix(s, k+"=") {
							kept = append(kept, e)
						}
					}
					env = append(kept, kv)
				}
				m["Env"] = env
			})
		case "LABEL":
			kvs, err := keyValues(arg)
			if err != nil {
				return nil, bad(err.Error())
			}
			edits = append(edits, func(m map[string]any) {
				labels, _ := m["Labels"].(map[string]any)
				if labels == nil {
					labels = map[string]any{}
				}
				for _, kv := range kvs {
					k, v, _ := strings.Cut(kv, "=")
					labels[k] = v
				}
				m["Labels"] = labels
			})
		case "EXPOSE", "VOLUME":
			key := map[string]string{"EXPOSE": "ExposedPorts", "VOLUME": "Volumes"}[strings.ToUpper(instr)]
			var items []string
			if strings.HasPrefix(arg, "[") {
				if err := json.Unmarshal([]byte(arg), &items); err != nil {
					return nil, bad("not a JSON array of strings")
				}
			} else {
				items = strings.Fields(arg)
			}
			for i, it := range items {
				if key == "ExposedPorts" && !strings.Contains(it, "/") {
					items[i] = it + "/tcp"
				}
			}
			edits = append(edits, func(m map[string]any) {
				set, _ := m[key].(map[string]any)
				if set == nil {
					set = map[string]any{}
				}
				for _, it := range items {
					set[it] = map[string]any{}
				}
				m[key] = set
			})
		case "USER", "WORKDIR", "STOPSIGNAL":
			key := map[string]string{"USER": "User", "WORKDIR": "WorkingDir", "STOPSIGNAL": "StopSignal"}[strings.ToUpper(instr)]
			if key == "StopSignal" {
				if _, err := ParseSignal(arg); err != nil {
					return nil, bad(err.Error())
				}
			}
			edits = append(edits, func(m map[string]any) { m[key] = arg })
		default:
			return nil, bad("berth knows CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME and STOPSIGNAL")
		}
	}
	return func(m map[string]any) error {
		for _, edit := range edits {
			edit(m)
		}
		return nil
	}, nil
}

// keyValues reads "K=V K2=V2" (values may be double-quoted) or docker's
// old "K V" form.
func keyValues(s string) ([]string, error) {
	if !strings.Contains(s, "=") {
		k, v, ok := strings.Cut(s, " ")
		if !ok {
			return nil, errors.New("want KEY=VALUE")
		}
		return []string{k + "=" + strings.TrimSpace(v)}, nil
	}
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		k, rest, ok := strings.Cut(s, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, errors.New("want KEY=VALUE")
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return nil, errors.New("an unterminated quote")
			}
			v, s = rest[1:1+end], rest[2+end:]
		} else {
			v, s, _ = strings.Cut(rest, " ")
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
