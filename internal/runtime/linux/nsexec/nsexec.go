//go:build linux && cgo

// Package nsexec links in the C constructor (nsexec.c) that enters and
// creates namespaces before the Go runtime starts threads. Importing it is
// all that is needed; the constructor is inert unless _BERTH_NSEXEC is set.
//
// This is the only cgo in the runtime besides libseccomp; keep it here.
package nsexec

// #cgo CFLAGS: -Wall -Wextra -O2
import "C"

// EnvSyncFD names the environment variable that carries the number of the
// sync socket to the constructor.
const EnvSyncFD = "_BERTH_NSEXEC"
