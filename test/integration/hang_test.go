package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hangDeadline bounds each berth command the tests run through the
// runtime's and the engine's helpers (serve excepted: it runs until the
// test stops it). No command of these tests takes a minute; one that runs
// past this hangs. Without a bound, a hang runs into the package's
// -timeout, which ends every test left and prints only the goroutines of
// this test binary, none of the stuck berth process's.
// BERTH_TEST_HANG_DEADLINE (a duration) sets another.
var hangDeadline = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("BERTH_TEST_HANG_DEADLINE")); err == nil && d > 0 {
		return d
	}
	return 4 * time.Minute
}()

// berthCommand is exec.Command with hangDeadline: past it, the command's
// processes are described on stderr (state, wait channel, kernel stack),
// the berth processes among them get SIGTRAP, which their Go runtime
// answers by printing its goroutines to stderr (a test that reads the
// command's stderr shows the top one's; SIGQUIT would be relayed to the
// container by a run, as any signal but the faults' is by the runtime's),
// and the command is killed 20 s later if still there.
func berthCommand(name string, args ...string) *exec.Cmd {
	if slices.Contains(args, "serve") {
		return exec.Command(name, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error {
		defer cancel()
		pid := cmd.Process.Pid
		if procState(pid) == "Z" || procState(pid) == "" {
			// Ended; the test never waited for it.
			return os.ErrProcessDone
		}
		tree := processTree(pid)
		fmt.Fprintf(os.Stderr, "\nHANG: %s %s ran past %v; its processes:\n%s", name, strings.Join(args, " "), hangDeadline, describeProcesses(tree))
		self, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		for _, p := range tree {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p)); exe == self {
				syscall.Kill(p, syscall.SIGTRAP)
			}
		}
		return nil
	}
	cmd.WaitDelay = 20 * time.Second
	return cmd
}

// procState is the one-letter state of pid ("" when it is gone).
func procState(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	rest := string(data[strings.LastIndexByte(string(data), ')')+1:])
	if f := strings.Fields(rest); len(f) > 0 {
		return f[0]
	}
	return ""
}

// processTree is pid and every process below it (by parent pid), pid first.
func processTree(pid int) []int {
	children := map[int][]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, s := range stats {
		data, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(f) < 2 {
			continue
		}
		p, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
		pp, _ := strconv.Atoi(f[1])
		children[pp] = append(children[pp], p)
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		kids := children[tree[i]]
		sort.Ints(kids)
		tree = append(tree, kids...)
	}
	return tree
}

// describeProcesses gives a line per process (pid, parent, state, wait
// channel, command line), its open descriptors, and the kernel stacks of
// its threads, threads with the same stack once.
func describeProcesses(pids []int) string {
	var b strings.Builder
	for _, p := range pids {
		read := func(name string) string {
			data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p, name))
			return strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " "))
		}
		stat := read("stat")
		ppid := ""
		if i := strings.LastIndexByte(stat, ')'); i >= 0 {
			if f := strings.Fields(stat[i+1:]); len(f) > 1 {
				ppid = f[1]
			}
		}
		args := read("cmdline")
		if len(args) > 200 {
			args = args[:200] + "..."
		}
		fmt.Fprintf(&b, "  pid %d ppid %s state %s wchan %s: %s\n", p, ppid, procState(p), read("wchan"), args)
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", p))
		sort.Slice(fds, func(i, j int) bool {
			a, _ := strconv.Atoi(filepath.Base(fds[i]))
			c, _ := strconv.Atoi(filepath.Base(fds[j]))
			return a < c
		})
		var open []string
		for _, fd := range fds {
			to, _ := os.Readlink(fd)
			open = append(open, filepath.Base(fd)+"="+to)
		}
		fmt.Fprintf(&b, "    fds: %s\n", strings.Join(open, " "))
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stack", p))
		seen := map[string][]string{}
		var order []string
		for _, task := range tasks {
			data, _ := os.ReadFile(task)
			var frames []string
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				if f := strings.Fields(line); len(f) > 1 {
					frames = append(frames, f[1])
				}
			}
			stack := strings.Join(frames, " < ")
			if _, ok := seen[stack]; !ok {
				order = append(order, stack)
			}
			seen[stack] = append(seen[stack], filepath.Base(filepath.Dir(task)))
		}
		for _, stack := range order {
			fmt.Fprintf(&b, "    threads %s: %s\n", strings.Join(seen[stack], ","), stack)
		}
	}
	return b.String()
}
