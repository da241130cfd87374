//go:build linux

package cri

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A template in containerd's shape: ranges and routes from the pod CIDRs.
const testTemplate = `{"cniVersion":"1.0.0","name":"k8s-pod-network","plugins":[{"type":"bridge","bridge":"cni0","isGateway":true,
 "ipam":{"type":"host-local",
  "ranges":[{{range $i, $r := .PodCIDRRanges}}{{if $i}},{{end}}[{"subnet":"{{$r}}"}]{{end}}],
  "routes":[{{range $i, $r := .Routes}}{{if $i}},{{end}}{"dst":"{{$r}}"}{{end}}]}}]}`

func TestTemplateData(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   TemplateData
		hasErr bool
	}{
		{in: "10.244.1.0/24", want: TemplateData{PodCIDR: "10.244.1.0/24", PodCIDRRanges: []string{"10.244.1.0/24"}, Routes: []string{"0.0.0.0/0"}}},
		{in: "10.244.1.7/24, fd00:10:244:1::/64", want: TemplateData{PodCIDR: "10.244.1.0/24", PodCIDRRanges: []string{"10.244.1.0/24", "fd00:10:244:1::/64"}, Routes: []string{"0.0.0.0/0", "::/0"}}},
		{in: "fd00::/64", want: TemplateData{PodCIDR: "fd00::/64", PodCIDRRanges: []string{"fd00::/64"}, Routes: []string{"::/0"}}},
		{in: "10.244.1.0", hasErr: true},
		{in: "10.244.1.0/24,", hasErr: true},
	} {
		got, err := templateData(tc.in)
		if (err != nil) != tc.hasErr || (!tc.hasErr && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("templateData(%q) = %+v, %v; want %+v (error %v)", tc.in, got, err, tc.want, tc.hasErr)
		}
	}
}

func TestRenderTemplate(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "template.conflist")
	os.WriteFile(tmpl, []byte(testTemplate), 0o644)
	pn := PodNetwork{Mode: PodNetworkCNI, ConfDir: filepath.Join(dir, "net.d"), Template: tmpl}

	if _, err := pn.choose(); !errors.Is(err, errNetworkNotReady) {
		t.Fatalf("before the pod CIDR: %v", err)
	}
	wrote, _, err := pn.renderTemplate("10.244.3.0/24,fd00:3::/64")
	if err != nil || !wrote {
		t.Fatalf("renderTemplate: %v %v", wrote, err)
	}
	data, err := os.ReadFile(filepath.Join(pn.ConfDir, TemplateFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`[{"subnet":"10.244.3.0/24"}],[{"subnet":"fd00:3::/64"}]`, `{"dst":"0.0.0.0/0"},{"dst":"::/0"}`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the rendered configuration lacks %s:\n%s", want, data)
		}
	}
	if c, err := pn.choose(); err != nil || c.cni == nil || c.cni.Name != "k8s-pod-network" {
		t.Errorf("the pod network after the render: %+v %v", c, err)
	}
	// A configuration is there now: a later CIDR leaves it alone.
	if wrote, _, err := pn.renderTemplate("10.244.9.0/24"); err != nil || wrote {
		t.Errorf("a second render over a configuration: %v %v", wrote, err)
	}
	if again, _ := os.ReadFile(filepath.Join(pn.ConfDir, TemplateFile)); string(again) != string(data) {
		t.Errorf("the configuration changed")
	}

	// A template whose output is no conflist writes nothing.
	bad := PodNetwork{Mode: PodNetworkCNI, ConfDir: filepath.Join(dir, "bad.d"), Template: filepath.Join(dir, "bad.tmpl")}
	os.WriteFile(bad.Template, []byte(`{"name": "{{.PodCIDR}}"`), 0o644)
	if _, _, err := bad.renderTemplate("10.244.3.0/24"); err == nil || !strings.Contains(err.Error(), bad.Template) {
		t.Errorf("a template that renders no conflist: %v", err)
	}
	if ents, _ := os.ReadDir(bad.ConfDir); len(ents) != 0 {
		t.Errorf("left in the configuration directory: %v", ents)
	}
	// A field the template names that does not exist is an error at
	// execution, not an empty string.
	os.WriteFile(bad.Template, []byte(`{{.PodCidr}}`), 0o644)
	if _, _, err := bad.renderTemplate("10.244.3.0/24"); err == nil {
		t.Errorf("a template naming an unknown field rendered")
	}
}

// The node's configuration names a plugin the bin directories lack: the
// network is not ready, and the message names the plugin, the file and
// where it was looked for.
func TestChooseMissingPlugin(t *testing.T) {
	dir := t.TempDir()
	conf, bin := filepath.Join(dir, "net.d"), filepath.Join(dir, "bin")
	os.MkdirAll(conf, 0o755)
	os.MkdirAll(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "bridge"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(conf, "10-x.conflist"), []byte(`{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"},{"type":"calico-ish"}]}`), 0o644)
	pn := PodNetwork{Mode: PodNetworkCNI, ConfDir: conf, BinDirs: []string{bin}}
	_, err := pn.choose()
	if !errors.Is(err, errNetworkNotReady) {
		t.Fatalf("choose: %v", err)
	}
	for _, want := range []string{"calico-ish", "10-x.conflist", bin} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "bridge,") || strings.Contains(err.Error(), "bridge not") {
		t.Errorf("the error names a plugin that is there: %q", err)
	}
	// A plugin type with a path in it is refused, never looked up.
	os.WriteFile(filepath.Join(conf, "10-x.conflist"), []byte(`{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"../bin/bridge"}]}`), 0o644)
	if _, err := pn.choose(); err == nil || !strings.Contains(err.Error(), "not a plugin's name") {
		t.Errorf("a plugin type with a path: %v", err)
	}
	// The default mode does not read the directory at all.
	if c, err := (PodNetwork{ConfDir: conf}).choose(); err != nil || c.cni != nil {
		t.Errorf("the default mode: %+v %v", c, err)
	}
}
