//go:build !linux

package main

func isInit() bool { return false }

func runInit() {}

func warmUp([]string) {}

const vmShimName = "berth-vmm"

func runVMShim([]string) int { return 125 }
