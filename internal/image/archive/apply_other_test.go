//go:build !linux

package archive

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestApplyNotSupported(t *testing.T) {
	_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(nil), Options{})
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("err = %v, want ErrNotSupported", err)
	}
}
