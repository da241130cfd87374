//go:build !linux

package userns

import (
	"context"
	"errors"
)

// Files are the subordinate ID files (Linux only).
type Files struct{ UID, GID string }

// SystemFiles are the host's.
var SystemFiles = Files{UID: "/etc/subuid", GID: "/etc/subgid"}

// Pool is what the berth user may hand out.
type Pool struct {
	UIDs, GIDs []Range
	Added      string
}

var errUnsupported = errors.New("userns: user namespaces need Linux")

// Ensure is Linux only.
func (f Files) Ensure(context.Context) (Pool, error) { return Pool{}, errUnsupported }

// Read is Linux only.
func (f Files) Read() (Pool, error) { return Pool{}, errUnsupported }
