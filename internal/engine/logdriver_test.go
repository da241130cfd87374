//go:build linux

package engine

import (
	"errors"
	"testing"
	"time"
)

func TestParseCRILine(t *testing.T) {
	ts := "2026-12-03T14:01:02.000000123Z"
	want, _ := time.Parse(time.RFC3339Nano, ts)
	for _, c := range []struct {
		line, stream, log string
	}{
		{ts + " stdout F hello", "stdout", "hello\n"},
		{ts + " stderr P part", "stderr", "part"},
		{ts + " stdout F ", "stdout", "\n"},
		{ts + " stdout P", "stdout", ""},
		{ts + " stdout F  two  spaces ", "stdout", " two  spaces \n"},
		{ts + " stdout F:x tagged", "stdout", "tagged\n"},
	} {
		ent, err := parseCRILine([]byte(c.line))
		if err != nil || ent.Stream != c.stream || ent.Log != c.log || !ent.Time.Equal(want) {
			t.Errorf("parseCRILine(%q) = %+v, %v; want %s %q", c.line, ent, err, c.stream, c.log)
		}
	}
	for _, bad := range []string{"", "notatime stdout F x", ts, ts + " stdin F x", ts + " stdout", ts + " stdout  x"} {
		if _, err := parseCRILine([]byte(bad)); err == nil {
			t.Errorf("parseCRILine(%q): no error", bad)
		}
	}
}

func TestCheckLogDriver(t *testing.T) {
	for _, c := range []struct {
		o    CreateOptions
		want string
		ok   bool
	}{
		{CreateOptions{}, "", true},
		{CreateOptions{LogDriver: "json-file"}, "", true},
		{CreateOptions{LogDriver: "local"}, "", true},
		{CreateOptions{LogDriver: "k8s-file"}, LogK8sFile, true},
		{CreateOptions{LogDriver: "k8s-file", LogPath: "/var/log/pods/x/0.log"}, LogK8sFile, true},
		{CreateOptions{LogDriver: "k8s-file", LogPath: "rel.log"}, "", false},
		{CreateOptions{LogDriver: "k8s-file", LogTag: "{{.Name}}"}, "", false},
		{CreateOptions{LogDriver: "json-file", LogPath: "/x.log"}, "", false},
		{CreateOptions{LogDriver: "none"}, LogNone, true},
		{CreateOptions{LogDriver: "none", LogPath: "/x.log"}, "", false},
		{CreateOptions{LogDriver: "syslog"}, "", false},
	} {
		got, err := checkLogDriver(c.o)
		if c.ok && (err != nil || got != c.want) || !c.ok && !errors.Is(err, ErrInvalid) {
			t.Errorf("checkLogDriver(%s path=%q tag=%q) = %q, %v", c.o.LogDriver, c.o.LogPath, c.o.LogTag, got, err)
		}
	}
	if p := logPathOf("/d", "id", LogK8sFile, "/a/../b.log"); p != "/b.log" {
		t.Errorf("logPathOf k8s-file with a path: %s", p)
	}
	if p := logPathOf("/d", "id", "", ""); p != "/d/id-json.log" {
		t.Errorf("logPathOf json-file: %s", p)
	}
}
