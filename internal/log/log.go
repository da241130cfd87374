// Package log carries a *slog.Logger in a context, as containerd's log
// package does: code that warns takes the logger from its context, and
// the front end decides where warnings go (the runtime CLI: its --log
// file or stderr, in runc's format).
package log

import (
	"context"
	"log/slog"
)

type key struct{}

// With returns a context whose logger is l.
func With(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, key{}, l)
}

// From returns the context's logger, or slog's default one.
func From(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(key{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return slog.Default()
}
