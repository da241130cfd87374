//go:build !linux

package main

func isInit() bool { return false }

func runInit() {}

func warmUp([]string) {}
