// Package runtimecli is berth's OCI runtime command line, runc's commands,
// flags and exit codes: `berth runtime ...`, `berth-runtime ...`, and the
// embedded runtime binary (cmd/berth-rt) that berth-runtime
// re-executes into. It imports the runtime driver and nothing of the
// engine, so that binary starts as fast as the runtime alone allows.
package runtimecli

// Version is the berth version the runtime reports (set at link time).
var Version = "dev"
