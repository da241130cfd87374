package registrytest

import "syscall"

// sysProcAttr kills the registry if the test binary dies without running
// its cleanups (a panic, a -timeout, SIGKILL), so no registry outlives it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
