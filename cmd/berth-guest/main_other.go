//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "berth-guest: the guest of berth's VMs is Linux")
	os.Exit(2)
}
