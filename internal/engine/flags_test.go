//go:build linux

package engine

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseExpose(t *testing.T) {
	got, err := ParseExpose([]string{"80", "53/udp", "7000-7002/tcp"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"53/udp", "7000/tcp", "7001/tcp", "7002/tcp", "80/tcp"}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want) {
		t.Errorf("got %v, want %v", keys, want)
	}
	for _, bad := range []string{"0", "x", "80/xtp", "90-80", "70000"} {
		if _, err := ParseExpose([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestLocalVolumeOptions(t *testing.T) {
	for _, ok := range []map[string]string{nil, {"type": "tmpfs", "device": "tmpfs", "o": "size=4m,uid=1000"},
		{"type": "none", "device": "/srv", "o": "bind,ro"}, {"type": "tmpfs", "device": "tmpfs"}} {
		if err := checkLocalOptions(ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, bad := range []map[string]string{{"type": "tmpfs"}, {"device": "x"}, {"o": "bind"}, {"o": "bind", "type": "none"},
		{"foo": "bar"}, {"size": "1g"}, {"type": "none", "device": "/x", "o": "bind,remount"}} {
		if err := checkLocalOptions(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	flags, data, err := mountFlags("bind,ro,nosuid,size=4m,uid=1000")
	if err != nil || flags != unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID || data != "size=4m,uid=1000" {
		t.Errorf("mountFlags: %#x %q %v", flags, data, err)
	}
}

func TestLogAttrs(t *testing.T) {
	c := &Container{ID: strings.Repeat("ab", 32), Name: "web", Image: "sha256:" + strings.Repeat("cd", 32)}
	c.Config.Image = "nginx:1"
	c.HostConfig.LogTag = "{{.Name}}/{{.ID}}/{{.ImageID}}/{{.ImageName}}"
	got, err := logAttrs(c)
	if want := `{"tag":"web/abababababab/cdcdcdcdcdcd/nginx:1"}`; err != nil || got != want {
		t.Errorf("got %s %v, want %s", got, err, want)
	}
	c.HostConfig.LogTag = ""
	if got, err := logAttrs(c); got != "" || err != nil {
		t.Errorf("no tag: %q %v", got, err)
	}
	c.HostConfig.LogTag = "{{.Nope}}"
	if _, err := logAttrs(c); err == nil {
		t.Error("{{.Nope}} accepted")
	}
}
