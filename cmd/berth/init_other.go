//go:build !linux

package main

func isInit() bool { return false }

func runInit() {}

func started() {}

const vmShimName = "berth-vmm"

func runVMShim([]string) int { return 125 }

const guestFilesName = "berth-guest-files"

func runGuestFiles([]string) int { return 125 }
