package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit: contrib/systemd/berth.service, as make install writes
// it (ExecStart at the installed binary), is a unit systemd accepts, and
// stopping it kills serve alone (KillMode=process), never the monitors
// that keep the containers.
func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile("../../contrib/systemd/berth.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(data)
	for _, want := range []string{"ExecStart=@BINDIR@/berth serve\n", "KillMode=process\n", "WantedBy=multi-user.target\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("berth.service lacks %q", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze here to verify the unit with (apt-get install systemd)")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "berth.service")
	bin, _ := filepath.Abs(berthBin(t))
	os.WriteFile(path, []byte(strings.ReplaceAll(unit, "@BINDIR@", filepath.Dir(bin))), 0o644)
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || strings.Contains(string(out), "berth.service") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
