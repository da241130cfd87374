//go:build !linux

// Package cgroupwarm: see cgroupwarm_linux.go; there is nothing to keep
// warm elsewhere.
package cgroupwarm

// Hold does nothing off Linux.
func Hold() (release func()) { return func() {} }

// V1Layout is false off Linux.
func V1Layout() bool { return false }
