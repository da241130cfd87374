//go:build linux

package cgroup

import (
	"strings"
	"testing"
)

func TestFsPath(t *testing.T) {
	tests := []struct {
		id, path string
		want     string
		wantErr  string
	}{
		{id: "abc", path: "", want: "/berth/abc"},
		{id: "abc", path: "/custom/ctr", want: "/custom/ctr"},
		{id: "abc", path: "/custom//ctr/", want: "/custom/ctr"},
		{id: "abc", path: "/custom/./ctr", want: "/custom/ctr"},
		{id: "abc", path: "rel/ctr", want: "rel/ctr"},
		{id: "abc", path: "./rel//ctr/", want: "rel/ctr"},
		{id: "abc", path: "system.slice:berth:abc", want: "system.slice:berth:abc"}, // plain name without the systemd driver
		{id: "", path: "/explicit", want: "/explicit"},                              // ID only matters for the default
		{id: "abc", path: "/a/../../etc", wantErr: `must not contain ".."`},
		{id: "abc", path: "../escape", wantErr: `must not contain ".."`},
		{id: "abc", path: "/", wantErr: "refers to a cgroup root"},
		{id: "abc", path: "//", wantErr: "refers to a cgroup root"},
		{id: "abc", path: ".", wantErr: "refers to a cgroup root"},
		{id: "abc", path: "/a\x00b", wantErr: "NUL"},
		{id: "", path: "", wantErr: "container ID is required"},
		{id: "a/b", path: "", wantErr: "cannot be used as a cgroup name"},
		{id: "..", path: "", wantErr: "cannot be used as a cgroup name"},
	}
	for _, tt := range tests {
		got, err := fsPath(tt.id, tt.path)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("fsPath(%q, %q) = %q, %v; want error containing %q", tt.id, tt.path, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("fsPath(%q, %q) = %q, %v; want %q", tt.id, tt.path, got, err, tt.want)
		}
	}
}

func TestParseSystemdPath(t *testing.T) {
	tests := []struct {
		id, path string
		want     systemdUnit
		wantErr  string
	}{
		{id: "abc", path: "", want: systemdUnit{"system.slice", "berth", "abc"}},
		{id: "abc", path: "machine.slice:libpod:abc", want: systemdUnit{"machine.slice", "libpod", "abc"}},
		{id: "abc", path: ":cri-containerd:abc", want: systemdUnit{"system.slice", "cri-containerd", "abc"}},
		{id: "abc", path: "user.slice::my.slice", want: systemdUnit{"user.slice", "", "my.slice"}},
		{id: "abc", path: "/berth/abc", wantErr: `expected "slice:prefix:name"`},
		{id: "abc", path: "a:b", wantErr: `expected "slice:prefix:name"`},
		{id: "abc", path: "system.slice:berth:", wantErr: "empty name"},
		{id: "abc", path: "system.scope:berth:abc", wantErr: "is not a slice"},
		{id: "abc", path: "system.slice:be/rth:abc", wantErr: "component"},
		{id: "", path: "", wantErr: "container ID is required"},
	}
	for _, tt := range tests {
		got, err := parseSystemdPath(tt.id, tt.path)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseSystemdPath(%q, %q) = %+v, %v; want error containing %q", tt.id, tt.path, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSystemdPath(%q, %q) = %+v, %v; want %+v", tt.id, tt.path, got, err, tt.want)
		}
	}
}

func TestSystemdUnitFromPath(t *testing.T) {
	tests := []struct {
		dir      string
		unitName string // what the systemd driver derives: prefix-name.scope or the slice itself
		slice    string
	}{
		{"/sys/fs/cgroup/system.slice/berth-abc.scope", "berth-abc.scope", "system.slice"},
		{"/sys/fs/cgroup/devices/system.slice/cri-containerd-abc.scope", "cri-containerd-abc.scope", "system.slice"},
		{"/sys/fs/cgroup/machine.slice/machine-x.slice", "machine-x.slice", "machine.slice"},
	}
	for _, tt := range tests {
		u := systemdUnitFromPath(tt.dir)
		unit := u.Name
		if !strings.HasSuffix(u.Name, ".slice") {
			unit = u.Prefix + "-" + u.Name + ".scope"
		}
		if unit != tt.unitName || u.Slice != tt.slice {
			t.Errorf("systemdUnitFromPath(%q) = %+v (unit %q); want unit %q in %q", tt.dir, u, unit, tt.unitName, tt.slice)
		}
	}
}

func TestOwnUnifiedCgroup(t *testing.T) {
	tests := []struct{ in, want string }{
		{"12:memory:/a\n0::/user.slice/session-1.scope\n", "/user.slice/session-1.scope"},
		{"0::/\n", "/"},
		{"0::\n", "/"},
		{"4:memory:/x\n1:name=systemd:/y\n", "/"}, // pure v1: no cgroup2 line
	}
	for _, tt := range tests {
		got, err := ownUnifiedCgroup(strings.NewReader(tt.in))
		if err != nil || got != tt.want {
			t.Errorf("ownUnifiedCgroup(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestHybridUnifiedPath(t *testing.T) {
	tests := []struct{ own, inner, want string }{
		{"/", "/berth/abc", "/sys/fs/cgroup/unified/berth/abc"},
		{"/runtime.scope", "/berth/abc", "/sys/fs/cgroup/unified/berth/abc"}, // absolute ignores own cgroup
		{"/runtime.scope", "ctr/abc", "/sys/fs/cgroup/unified/runtime.scope/ctr/abc"},
		{"/", "ctr", "/sys/fs/cgroup/unified/ctr"},
	}
	for _, tt := range tests {
		if got := hybridUnifiedPath(hybridUnifiedMount, tt.own, tt.inner); got != tt.want {
			t.Errorf("hybridUnifiedPath(%q, %q) = %q; want %q", tt.own, tt.inner, got, tt.want)
		}
	}
}
