package oci

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseSignal(t *testing.T) {
	good := map[string]int{"KILL": 9, "SIGKILL": 9, "kill": 9, "9": 9, "TERM": 15, "SIGUSR1": 10, "RTMIN": 34, "RTMIN+3": 37, "SIGRTMAX-1": 63, "64": 64}
	for in, want := range good {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "-1", "NOPE", "RTMIN+40", "SIG"} {
		if got, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) = %d, want an error", in, got)
		}
	}
}

func TestCapabilityNames(t *testing.T) {
	if n, ok := CapabilityByName("CAP_SYS_ADMIN"); !ok || n != 21 {
		t.Fatalf("CAP_SYS_ADMIN = %d %v", n, ok)
	}
	if n, ok := CapabilityByName("net_raw"); !ok || n != 13 {
		t.Fatalf("net_raw = %d %v", n, ok)
	}
	if _, ok := CapabilityByName("CAP_TEST"); ok {
		t.Fatal("CAP_TEST accepted")
	}
	if CapabilityName(40) != "CAP_CHECKPOINT_RESTORE" || CapabilityName(99) != "CAP_99" {
		t.Fatal("CapabilityName")
	}
}

func validSpec() *specs.Spec {
	s := DefaultSpec(false, 0, 0)
	return s
}

func TestValidate(t *testing.T) {
	if err := Validate(validSpec()); err != nil {
		t.Fatalf("default spec invalid: %v", err)
	}
	cases := map[string]func(*specs.Spec){
		"ociVersion is empty":            func(s *specs.Spec) { s.Version = "" },
		"not supported":                  func(s *specs.Spec) { s.Version = "2.0.0" },
		"root.path is required":          func(s *specs.Spec) { s.Root = nil },
		"process.args must not be empty": func(s *specs.Spec) { s.Process.Args = nil },
		"must be an absolute path":       func(s *specs.Spec) { s.Process.Cwd = "tmp" },
		"unknown capability": func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_TEST")
		},
		"unknown type": func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS"}} },
		"above its hard limit": func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 5}}
		},
		"listed twice": func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
		},
		"need a user namespace": func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 1}}
		},
		"destination is empty": func(s *specs.Spec) { s.Mounts[0].Destination = "" },
	}
	for want, mutate := range cases {
		s := validSpec()
		mutate(s)
		err := Validate(s)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}

func TestLoadBundleErrorsNameThePath(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadBundle(dir); err == nil || !strings.Contains(err.Error(), "berth runtime spec") {
		t.Fatalf("missing config.json: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"ociVersion": "1.0.2", "root": {"path": "rootfs"}`), 0o644)
	if _, _, err := LoadBundle(dir); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("truncated config.json: %v", err)
	}
	data, _ := json.Marshal(validSpec())
	os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644)
	if _, _, err := LoadBundle(dir); err == nil || !strings.Contains(err.Error(), "rootfs") {
		t.Fatalf("missing rootfs: %v", err)
	}
	os.Mkdir(filepath.Join(dir, "rootfs"), 0o755)
	_, rootfs, err := LoadBundle(dir)
	if err != nil || rootfs != filepath.Join(dir, "rootfs") {
		t.Fatalf("LoadBundle = %q, %v", rootfs, err)
	}
}

func TestDefaultSpecRootless(t *testing.T) {
	s := DefaultSpec(true, 1000, 1000)
	if err := Validate(s); err != nil {
		t.Fatal(err)
	}
	var hasUser bool
	for _, ns := range s.Linux.Namespaces {
		hasUser = hasUser || ns.Type == specs.UserNamespace
	}
	if !hasUser || s.Linux.UIDMappings[0].HostID != 1000 || s.Linux.Resources != nil {
		t.Fatalf("rootless spec: %+v", s.Linux)
	}
	for _, m := range s.Mounts {
		if m.Type == "cgroup" || m.Type == "sysfs" {
			t.Fatalf("rootless spec mounts %s", m.Type)
		}
	}
}
