package network

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestListSkipsVanishedRecord: a record that goes between the directory's
// read and its own (a network removed while another client lists, as
// docker compose does on down) is left out, not an error for the whole
// list. A dangling link stands for it: listed by the directory, gone when
// read.
func TestListSkipsVanishedRecord(t *testing.T) {
	m, err := Open(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(t.TempDir(), "removed"), m.recordPath("gone")); err != nil {
		t.Fatal(err)
	}
	nets, err := m.List(context.Background())
	if err != nil {
		t.Fatalf("List with a record removed meanwhile: %v", err)
	}
	for _, n := range nets {
		if n.Name == "gone" {
			t.Errorf("listed a removed network: %+v", n)
		}
	}
	if len(nets) != 1 || nets[0].Name != DefaultName {
		t.Errorf("List = %v, want the default network alone", nets)
	}
}
