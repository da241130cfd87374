package cni

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadDir(t *testing.T) {
	write := func(dir, name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const list = `{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}`
	const single = `{"cniVersion":"0.4.0","name":"flat","type":"ptp","ipam":{"type":"host-local"}}`

	t.Run("none", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "README", "not a configuration")
		dc, err := LoadDir(dir)
		if !errors.Is(err, ErrNoConfig) || !strings.Contains(err.Error(), dir) || dc == nil || len(dc.Skipped) != 0 {
			t.Errorf("LoadDir of a directory without configurations: %+v, %v", dc, err)
		}
		if _, err := LoadDir(filepath.Join(dir, "absent")); !errors.Is(err, ErrNoConfig) {
			t.Errorf("LoadDir of a missing directory: %v", err)
		}
	})
	t.Run("lexical order and broken files skipped", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "05-broken.conflist", `{"cniVersion": "1.0.0", "name": `)
		write(dir, "07-empty.conflist", `{"cniVersion":"1.0.0","name":"empty","plugins":[]}`)
		write(dir, "20-later.conflist", strings.ReplaceAll(list, `"pods"`, `"later"`))
		write(dir, "10-pods.conflist", list)
		dc, err := LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if dc.File != filepath.Join(dir, "10-pods.conflist") || dc.Network.Name() != "pods" {
			t.Errorf("chose %s (%s), want 10-pods.conflist (pods)", dc.File, dc.Network.Name())
		}
		if got := dc.Network.PluginTypes(); !reflect.DeepEqual(got, []string{"bridge", "portmap"}) {
			t.Errorf("plugins %v", got)
		}
		if len(dc.Skipped) != 2 || !strings.Contains(dc.Skipped[0].Error(), "05-broken.conflist") || !strings.Contains(dc.Skipped[1].Error(), "no plugins") {
			t.Errorf("skipped: %v", dc.Skipped)
		}
	})
	t.Run("a single plugin's conf", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "99-flat.conf", single)
		write(dir, "00-typeless.json", `{"cniVersion":"0.4.0","name":"typeless"}`)
		dc, err := LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if dc.Network.Name() != "flat" || !reflect.DeepEqual(dc.Network.PluginTypes(), []string{"ptp"}) || len(dc.Skipped) != 1 {
			t.Errorf("a .conf as a list: %s %v, skipped %v", dc.Network.Name(), dc.Network.PluginTypes(), dc.Skipped)
		}
		// Its bytes are a conflist that parses back the same.
		n, err := ParseNetwork(dc.Network.Bytes())
		if err != nil || n.Name() != "flat" || !reflect.DeepEqual(n.PluginTypes(), []string{"ptp"}) {
			t.Errorf("the list of a .conf: %v %v", n, err)
		}
	})
}
