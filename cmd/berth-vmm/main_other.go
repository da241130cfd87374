//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "berth-vmm: VM containers need Linux")
	os.Exit(125)
}
