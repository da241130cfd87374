//go:build !linux

package archive

import (
	"errors"
	"os"
	"syscall"
)

func unprivileged() *syscall.SysProcAttr { return nil }

func setPipeSize(*os.File) {}

func isBrokenPipe(err error) bool { return errors.Is(err, syscall.EPIPE) }
