//go:build !linux

package agent

// IsAgent is false off Linux: the guest is a Linux kernel.
func IsAgent() bool { return false }

// Main is never called off Linux.
func Main() {}

// PodPIDMain is never called off Linux.
func PodPIDMain() {}
