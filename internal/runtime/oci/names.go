package oci

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// capabilities lists Linux capability names by number (linux/capability.h).
var capabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// CapabilityByName returns the number of a capability ("CAP_SYS_ADMIN";
// the CAP_ prefix is optional and case is ignored).
func CapabilityByName(name string) (int, bool) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for i, c := range capabilities {
		if c == n {
			return i, true
		}
	}
	return 0, false
}

// CapabilityName returns the name of capability number n.
func CapabilityName(n int) string {
	if n >= 0 && n < len(capabilities) {
		return capabilities[n]
	}
	return "CAP_" + strconv.Itoa(n)
}

// KnownCapabilities lists every capability name berth knows.
func KnownCapabilities() []string { return append([]string(nil), capabilities...) }

// rlimits maps RLIMIT_* names to their Linux numbers.
var rlimits = map[string]int{
	"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
	"RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
	"RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
	"RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
	"RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

// RlimitByName returns the resource number of an RLIMIT_* name.
func RlimitByName(name string) (int, bool) {
	n, ok := rlimits[name]
	return n, ok
}

// KnownRlimits lists the RLIMIT_* names, sorted.
func KnownRlimits() []string {
	var out []string
	for k := range rlimits {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// signals maps signal names (without SIG) to Linux numbers.
var signals = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6,
	"BUS": 7, "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12,
	"PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17, "CLD": 17,
	"CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23,
	"XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
	"POLL": 29, "PWR": 30, "SYS": 31,
}

const sigRTMin, sigRTMax = 34, 64

// ParseSignal accepts "KILL", "SIGKILL", "kill", "9" and "RTMIN+3".
func ParseSignal(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > sigRTMax {
			return 0, fmt.Errorf("invalid signal number %d: use 1-%d or a name such as TERM or KILL", n, sigRTMax)
		}
		return n, nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if n, ok := signals[name]; ok {
		return n, nil
	}
	for _, base := range []struct {
		prefix string
		n      int
		sign   int
	}{{"RTMIN+", sigRTMin, 1}, {"RTMAX-", sigRTMax, -1}} {
		if strings.HasPrefix(name, base.prefix) {
			off, err := strconv.Atoi(name[len(base.prefix):])
			if err == nil && off >= 0 && base.n+base.sign*off >= sigRTMin && base.n+base.sign*off <= sigRTMax {
				return base.n + base.sign*off, nil
			}
		}
	}
	switch name {
	case "RTMIN":
		return sigRTMin, nil
	case "RTMAX":
		return sigRTMax, nil
	}
	return 0, fmt.Errorf("unknown signal %q: use a name such as TERM or KILL, or a number", s)
}
