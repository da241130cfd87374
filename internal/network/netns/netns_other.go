//go:build !linux

package netns

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

var errUnsupported = errors.New("netns: network namespaces need Linux")

func New(dir, name string) (string, error) { return "", errUnsupported }
func Remove(dir, name string) error        { return errUnsupported }
func List(dir string) ([]string, error)    { return nil, errUnsupported }
func CleanTemp(dir string) error           { return errUnsupported }
func IsPinned(path string) (bool, error)   { return false, errUnsupported }

// Dial is unsupported here.
func Dial(ctx context.Context, path, network string, addr netip.AddrPort) (net.Conn, error) {
	return nil, errUnsupported
}

// LoopbackUp is unsupported here.
func LoopbackUp(path string) error { return errUnsupported }

// ReleaseDir is a no-op where there are no network namespaces.
func ReleaseDir(string) (bool, error) { return true, nil }

// SetSysctls is unsupported here.
func SetSysctls(path string, kv map[string]string) error { return errUnsupported }

// PinIPCUTS is unsupported here.
func PinIPCUTS(parent, name, hostname string) error { return errUnsupported }

// UnpinIPCUTS is unsupported here.
func UnpinIPCUTS(dir string) error { return errUnsupported }

// IPCUTSPinned is unsupported here.
func IPCUTSPinned(dir string) (bool, error) { return false, errUnsupported }

// PinPID is unsupported here.
func PinPID(parent, name string, pid int) error { return errUnsupported }

// UnpinPID is unsupported here.
func UnpinPID(dir string) error { return errUnsupported }

// PIDPinned is unsupported here.
func PIDPinned(dir string) (bool, error) { return false, errUnsupported }

// PinUser is unsupported here.
func PinUser(parent, name string, pid int) error { return errUnsupported }

// UnpinUser is unsupported here.
func UnpinUser(dir string) error { return errUnsupported }

// UserPinned is unsupported here.
func UserPinned(dir string) (bool, error) { return false, errUnsupported }

// PinOf is unsupported here.
func PinOf(parent, name string, pid int, kind string) error { return errUnsupported }

// SetHostname is unsupported here.
func SetHostname(path, hostname string) error { return errUnsupported }
