package main

import (
	"github.com/berth-dev/berth/internal/runtime/linux"
	_ "github.com/berth-dev/berth/internal/runtime/linux/nsexec" // the namespace-entry constructor
)

func isInit() bool { return linux.IsInit() }

func runInit() { linux.Init() }
