//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "berth-containerinit: the container init runs on Linux only")
	os.Exit(2)
}
