// Package proc reads facts about host processes from /proc: what berth
// needs to name its own processes (monitors, creators) across pid reuse.
// It is not a driver: the engine uses it for berth's processes, never for
// a container's.
package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat returns the start time (field 22 of /proc/<pid>/stat, clock ticks
// since boot) and the state (field 3) of a process.
func Stat(pid int) (start uint64, state byte, err error) {
	fields, err := statFields(pid)
	if err != nil {
		return 0, 0, err
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return start, fields[0][0], nil
}

// Parent returns a process's parent pid (field 4 of /proc/<pid>/stat).
func Parent(pid int) (int, error) {
	fields, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(fields[1])
}

// statFields are the fields of /proc/<pid>/stat from the third (state)
// on, at least 20 of them.
func statFields(pid int) ([]string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	// comm (field 2) may contain spaces and parentheses: split after the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(s[i+2:])
	if len(fields) < 20 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return fields, nil
}

// StartTime is a live process's start time, which with the pid names it
// even after the pid is reused; 0 for no such process or a zombie.
func StartTime(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	start, state, err := Stat(pid)
	if err != nil || state == 'Z' || state == 'X' {
		return 0
	}
	return start
}
