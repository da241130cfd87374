//go:build !linux

package events

import (
	"context"
	"errors"
)

// Watcher is Linux's (inotify); elsewhere readers poll.
type Watcher struct{}

// Watch is not supported here.
func (j *Journal) Watch(ctx context.Context) (*Watcher, error) {
	return nil, errors.ErrUnsupported
}

// Next of a nil Watcher never fires.
func (w *Watcher) Next() <-chan struct{} { return nil }
