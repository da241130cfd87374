package integration

import "syscall"

type syscallStat = syscall.Stat_t
