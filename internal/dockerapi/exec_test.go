//go:build linux

package dockerapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/engine"
)

func TestEvictableExec(t *testing.T) {
	code := 0
	execs := map[string]*execRecord{
		"running-old":   {id: "running-old", seq: 1, started: true, running: true},
		"unstarted-old": {id: "unstarted-old", seq: 2},
		"done-new":      {id: "done-new", seq: 9, started: true, exitCode: &code},
		"done-old":      {id: "done-old", seq: 5, started: true, exitCode: &code},
		"unstarted-new": {id: "unstarted-new", seq: 7},
	}
	for _, want := range []string{"done-old", "done-new", "unstarted-old", "unstarted-new", ""} {
		got := evictableExec(execs)
		if got != want {
			t.Fatalf("evicted %q, want %q", got, want)
		}
		delete(execs, got)
	}
}

type nopCloseBuffer struct{ bytes.Buffer }

func (*nopCloseBuffer) Close() error { return nil }

// What a client types reaches the exec's terminal up to its detach
// keys, a held partial match goes on as typed when it turns out not to
// be them, and the keys across writes detach.
func TestDetachWriter(t *testing.T) {
	for _, tc := range []struct {
		keys    []byte
		writes  []string
		want    string
		detach  bool
		atWrite int
	}{
		{[]byte{16, 17}, []string{"ls\r", "\x10", "\x11", "never"}, "ls\r", true, 2},
		{[]byte{16, 17}, []string{"a\x10b\x10\x10", "\x11c"}, "a\x10b\x10", true, 1},
		{[]byte{16, 17}, []string{"\x10x", "y"}, "\x10xy", false, 0},
		{[]byte("x"), []string{"abc", "dxe"}, "abcd", true, 1},
		{[]byte("xyz"), []string{"xyxyz"}, "xy", true, 0},
	} {
		var buf nopCloseBuffer
		ch := make(chan struct{})
		d := &detachWriter{w: &buf, keys: tc.keys, detached: ch}
		detachedAt := -1
		for i, w := range tc.writes {
			if _, err := d.Write([]byte(w)); err != nil {
				if !errors.Is(err, engine.ErrDetached) {
					t.Fatalf("%q: write %d: %v", tc.writes, i, err)
				}
				if detachedAt < 0 {
					detachedAt = i
				}
			}
		}
		select {
		case <-ch:
			if !tc.detach || detachedAt != tc.atWrite {
				t.Errorf("%q with keys %q: detached at write %d (want %v at %d)", tc.writes, tc.keys, detachedAt, tc.detach, tc.atWrite)
			}
		default:
			if tc.detach {
				t.Errorf("%q with keys %q: not detached", tc.writes, tc.keys)
			}
		}
		if buf.String() != tc.want {
			t.Errorf("%q with keys %q: the terminal got %q, want %q", tc.writes, tc.keys, buf.String(), tc.want)
		}
	}
}

// A commit's config merges into the image's as dockerd's: what it sets
// replaces, Env by name, Labels/ExposedPorts/Volumes added to, the rest
// kept.
func TestCommitMerge(t *testing.T) {
	img := map[string]any{
		"Cmd": []any{"sh"}, "Entrypoint": []any{"/init"}, "User": "app", "WorkingDir": "/srv",
		"Env":    []any{"PATH=/bin", "A=1", "B=2"},
		"Labels": map[string]any{"keep": "yes", "over": "old"},
	}
	req := &container.Config{Cmd: []string{"echo", "hi"}, Env: []string{"A=10", "C=3"},
		Labels: map[string]string{"over": "new", "add": "1"}, WorkingDir: "/work"}
	if err := commitMerge(req)(img); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(img)
	want := `{"Cmd":["echo","hi"],"Entrypoint":["/init"],"Env":["PATH=/bin","A=10","B=2","C=3"],"Labels":{"add":"1","keep":"yes","over":"new"},"User":"app","WorkingDir":"/work"}`
	if string(got) != want {
		t.Errorf("merged:\n got %s\nwant %s", got, want)
	}
	empty := map[string]any{"Cmd": []any{"sh"}}
	if err := commitMerge(&container.Config{})(empty); err != nil || len(empty) != 1 {
		t.Errorf("an empty config changed the image's: %v %v", empty, err)
	}
}
