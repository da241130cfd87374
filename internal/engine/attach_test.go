//go:build linux

package engine

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseDetachKeys(t *testing.T) {
	for _, c := range []struct {
		spec string
		want []byte
	}{
		{"", []byte{16, 17}},
		{"ctrl-p,ctrl-q", []byte{16, 17}},
		{"ctrl-a,x", []byte{1, 'x'}},
		{"ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", []byte{0, 27, 28, 29, 30, 31}},
		{"a,b,c", []byte("abc")},
		{"DEL", []byte{127}},
		{"ctrl-z", []byte{26}},
	} {
		got, err := ParseDetachKeys(c.spec)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("ParseDetachKeys(%q) = %v, %v; want %v", c.spec, got, err, c.want)
		}
	}
	for _, spec := range []string{"ctrl-1", "ctrl-A", "ab", "ctrl-p,", "ctrl-", "ctrl-p,,ctrl-q", strings.Repeat("a,", 32) + "a"} {
		_, err := ParseDetachKeys(spec)
		if err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseDetachKeys(%q): %v, want an ErrInvalid", spec, err)
			continue
		}
		if !strings.Contains(err.Error(), spec) {
			t.Errorf("ParseDetachKeys(%q): %q does not name the spec", spec, err)
		}
	}
}
