//go:build linux && cgo

package seccomp

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"

	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// SupportedActions lists the runtime-spec actions this build can load on the
// running kernel, for the runtime-spec "features" document. SCMP_ACT_NOTIFY
// is never listed (not implemented yet).
func SupportedActions() []string { return slices.Clone(supportedActions()) }

// SupportedArchs lists the runtime-spec architectures Compile accepts: those
// the linked libseccomp knows. Architectures of the other byte order than the
// native one are listed too; Compile accepts them but leaves them out of the
// filter, since the kernel cannot run them.
func SupportedArchs() []string { return slices.Clone(supportedArchs()) }

// SupportedFlags lists the runtime-spec seccomp flags that both the linked
// libseccomp and the running kernel support.
// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is never listed (it needs
// SCMP_ACT_NOTIFY).
func SupportedFlags() []string { return slices.Clone(supportedFlags()) }

// SupportedOperators lists the runtime-spec argument comparison operators.
func SupportedOperators() []string {
	out := make([]string, 0, len(operators))
	for _, o := range operators {
		out = append(out, string(o.name))
	}
	return out
}

// Enabled reports whether seccomp filters can be used: the linked libseccomp
// is usable and the kernel supports seccomp filter mode.
func Enabled() bool { return enabled() }

var enabled = sync.OnceValue(func() bool {
	if _, err := libseccomp.GetNativeArch(); err != nil {
		return false
	}
	return kernelHasFilters()
})

var supportedActions = sync.OnceValue(func() []string {
	var out []string
	for _, a := range actions {
		avail, known := kernelActionAvail(a.kernelRet)
		if !known {
			// The kernel cannot be asked (Linux < 4.14): it has the
			// original actions only.
			avail = !a.since414
		}
		if avail {
			out = append(out, string(a.name))
		}
	}
	return out
})

var supportedArchs = sync.OnceValue(func() []string {
	scratch, err := libseccomp.NewFilter(libseccomp.ActAllow)
	if err != nil {
		return nil
	}
	defer scratch.Release()
	var out []string
	for _, a := range archs {
		// EDOM: known, but of the other byte order; Compile accepts and
		// skips it (see Compile), so it is recognized.
		if err := scratch.AddArch(a.lib); err == nil || errors.Is(err, syscall.EDOM) {
			out = append(out, string(a.name))
		}
	}
	return out
})

var supportedFlags = sync.OnceValue(func() []string {
	var out []string
	if kernelHasFlag(unix.SECCOMP_FILTER_FLAG_TSYNC) {
		out = append(out, flagTsync)
	}
	scratch, err := libseccomp.NewFilter(libseccomp.ActAllow)
	if err != nil {
		return out
	}
	defer scratch.Release()
	if kernelHasFlag(unix.SECCOMP_FILTER_FLAG_LOG) && scratch.SetLogBit(true) == nil {
		out = append(out, flagLog)
	}
	if kernelHasFlag(unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW) && scratch.SetSSB(true) == nil {
		out = append(out, flagSpecAllow)
	}
	return out
})

// LibraryVersion is the version of the linked libseccomp, "2.5.4".
func LibraryVersion() string {
	major, minor, micro := libseccomp.GetLibraryVersion()
	return fmt.Sprintf("%d.%d.%d", major, minor, micro)
}
