//go:build !linux

package archive

import (
	"context"
	"io"
)

func apply(ctx context.Context, root string, r io.Reader, opts Options) (Stats, error) {
	return Stats{}, ErrNotSupported
}
