//go:build !linux

package snapshot

func markTopDir(string) {}
