package linux

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestDropUngrantableAmbient(t *testing.T) {
	c := &specs.LinuxCapabilities{
		Permitted:   []string{"CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"},
		Inheritable: []string{"CAP_CHOWN", "CAP_NET_RAW", "CAP_SETUID"},
		Ambient:     []string{"CAP_KILL", "CAP_CHOWN", "CAP_SETUID", "CAP_NET_RAW"},
	}
	dropped := dropUngrantableAmbient(c)
	if want := []string{"CAP_KILL", "CAP_SETUID"}; !reflect.DeepEqual(dropped, want) {
		t.Errorf("dropped %q, want %q", dropped, want)
	}
	if want := []string{"CAP_CHOWN", "CAP_NET_RAW"}; !reflect.DeepEqual(c.Ambient, want) {
		t.Errorf("kept %q, want %q", c.Ambient, want)
	}
	if dropUngrantableAmbient(nil) != nil || dropUngrantableAmbient(&specs.LinuxCapabilities{}) != nil {
		t.Error("nothing to drop, something dropped")
	}
}
