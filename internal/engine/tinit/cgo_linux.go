package tinit

// On Linux berth-init runs entirely in the C constructor of
// tinit_linux.c, before the Go runtime starts; Main is what other builds
// (and a binary built without cgo) run.

import "C"
