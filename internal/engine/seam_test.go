package engine

import (
	"os/exec"
	"strings"
	"testing"
)

// The engine reaches isolation drivers only through internal/runtime's
// interfaces: it must not depend on a driver package, directly or through
// another package (the CLI wires a driver in).
func TestEngineImportsNoDriver(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v (the go tool is needed for this check)", err)
	}
	drivers := []string{"internal/runtime/linux", "internal/runtime/vm", "internal/runtime/jail"}
	checked := 0
	for _, pkg := range strings.Fields(string(out)) {
		if !strings.HasPrefix(pkg, "github.com/berth-dev/berth/") {
			continue
		}
		checked++
		for _, d := range drivers {
			if p := strings.TrimPrefix(pkg, "github.com/berth-dev/berth/"); p == d || strings.HasPrefix(p, d+"/") {
				t.Errorf("internal/engine depends on the driver package %s", pkg)
			}
		}
	}
	if checked == 0 {
		t.Fatalf("go list named no package of this module: %q", out)
	}
}
