//go:build linux

package integration

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/proc"
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
		recordHang(fmt.Sprintf("%s %s", filepath.Base(name), strings.Join(args, " ")), tree)
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
	if _, state, err := proc.Stat(pid); err == nil {
		return string(state)
	}
	return ""
}

// procText is /proc/<pid>/<name>, its NULs as spaces, trimmed.
func procText(pid int, name string) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	return strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " "))
}

// kernelFrames are the function names of a kernel stack file's frames.
func kernelFrames(path string) []string {
	data, _ := os.ReadFile(path)
	var frames []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			frames = append(frames, strings.SplitN(f[1], "+", 2)[0])
		}
	}
	return frames
}

// processTree is pid and every process below it (by parent pid), pid first.
func processTree(pid int) []int {
	children := map[int][]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		p, _ := strconv.Atoi(filepath.Base(dir))
		if pp, err := proc.Parent(p); err == nil {
			children[pp] = append(children[pp], p)
		}
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
		ppid, _ := proc.Parent(p)
		args := procText(p, "cmdline")
		if len(args) > 200 {
			args = args[:200] + "..."
		}
		fmt.Fprintf(&b, "  pid %d ppid %d state %s wchan %s: %s\n", p, ppid, procState(p), procText(p, "wchan"), args)
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
			stack := strings.Join(kernelFrames(task), " < ")
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

// hangs are the short accounts of the commands berthCommand found hung,
// printed again at the end of the package's output (reportHangs): CI
// shows a run's last lines, where a test's own failure is long gone.
var hangs struct {
	sync.Mutex
	lines []string
}

func recordHang(command string, tree []int) {
	if len(command) > 160 {
		command = command[:160] + "..."
	}
	hangs.Lock()
	defer hangs.Unlock()
	hangs.lines = append(hangs.lines, "HANG: "+command)
	hangs.lines = append(hangs.lines, briefProcesses(tree)...)
}

// reportHangs prints the hangs' short accounts; TestMain calls it last.
func reportHangs() {
	hangs.Lock()
	defer hangs.Unlock()
	if len(hangs.lines) > 0 {
		fmt.Fprintf(os.Stderr, "\nberth commands that hung (whole accounts above, in their tests):\n%s\n", strings.Join(hangs.lines, "\n"))
	}
}

// briefProcesses is a line per process: pid, state, wait channel, the
// first kernel frames of its first thread, and its command line, short.
func briefProcesses(pids []int) []string {
	var lines []string
	for _, p := range pids {
		frames := kernelFrames(fmt.Sprintf("/proc/%d/stack", p))
		frames = frames[:min(len(frames), 3)]
		args := procText(p, "cmdline")
		if len(args) > 100 {
			args = args[:100] + "..."
		}
		lines = append(lines, fmt.Sprintf("  %d %s %s [%s] %s", p, procState(p), procText(p, "wchan"), strings.Join(frames, "<"), args))
	}
	return lines
}

// watchPackageTimeout ends the test binary itself shortly before
// -test.timeout would: it prints this binary's goroutines (which test was
// running, and where), then its berth processes in brief, last, so that
// a run's last lines (all CI shows) say what hung; the timeout's own panic
// would end on this binary's goroutines alone.
func watchPackageTimeout() {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return
	}
	timeout, err := time.ParseDuration(f.Value.String())
	if err != nil || timeout <= 2*time.Minute {
		return
	}
	time.AfterFunc(timeout-time.Minute, func() {
		buf := make([]byte, 8<<20)
		buf = buf[:runtime.Stack(buf, true)]
		fmt.Fprintf(os.Stderr, "\nthe package is about to run past -test.timeout %v; its goroutines:\n%s\n", timeout, buf)
		// Where the tests stand: each Test function's frame and line.
		var where []string
		lines := strings.Split(string(buf), "\n")
		for i, line := range lines {
			if strings.Contains(line, "/test/integration.Test") && i+1 < len(lines) {
				where = append(where, "  "+strings.SplitN(line[strings.LastIndex(line, ".Test")+1:], "(", 2)[0]+" at "+strings.Fields(lines[i+1])[0])
			}
		}
		tree := processTree(os.Getpid())[1:]
		fmt.Fprintf(os.Stderr, "tests running:\n%s\nits processes:\n%s\n", strings.Join(where, "\n"), strings.Join(briefProcesses(tree), "\n"))
		reportHangs()
		os.Exit(2)
	})
}
