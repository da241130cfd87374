// Command runtime benchmarks `run` of /bin/true in a busybox bundle:
// create + start + wait + delete, berth against runc and, where it is
// installed and the host's cgroup layout lets it run, crun, alternating so
// all see the same machine noise. It prints each one's median with its
// spread (quartiles, min, max) and the ratios of the medians.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() {
	n := flag.Int("n", 30, "runs per runtime")
	bundle := flag.String("bundle", "", "bundle directory (process.args = /bin/true)")
	berth := flag.String("berth", "bin/berth-runtime", "berth runtime binary")
	runc := flag.String("runc", "runc", "runc binary")
	crun := flag.String("crun", "crun", "crun binary (left out, saying why, where it is missing or cannot run here)")
	warmup := flag.Int("warmup", 3, "untimed runs per runtime first")
	flag.Parse()
	if *bundle == "" {
		fmt.Fprintln(os.Stderr, "usage: runtime -bundle DIR [-n N]")
		os.Exit(2)
	}
	root, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(root)
	run := func(name, bin, id string) (time.Duration, error) {
		cmd := exec.Command(bin, "--root", filepath.Join(root, name), "run", "--bundle", *bundle, id)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		if err != nil {
			return d, fmt.Errorf("%s run: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
		return d, nil
	}
	runtimes := []struct{ name, bin string }{{"berth", *berth}, {"runc", *runc}}
	if path, err := exec.LookPath(*crun); err != nil {
		fmt.Printf("crun: left out: %s is not installed\n", *crun)
	} else if _, err := run("crun", path, "bench-crun-probe"); err != nil {
		fmt.Printf("crun: left out: it cannot run here (%v)\n", firstLine(err.Error()))
	} else {
		runtimes = append(runtimes, struct{ name, bin string }{"crun", path})
	}
	times := map[string][]time.Duration{}
	for i := -*warmup; i < *n; i++ {
		for _, rt := range runtimes {
			d, err := run(rt.name, rt.bin, fmt.Sprintf("bench-%s-%d", rt.name, i+*warmup))
			if err != nil {
				fail(err)
			}
			if i >= 0 {
				times[rt.name] = append(times[rt.name], d)
			}
		}
	}
	fmt.Printf("runtime run /bin/true (create+start+wait+delete), %d runs each, alternating\n", *n)
	for _, rt := range runtimes {
		s := sorted(times[rt.name])
		fmt.Printf("  %-6s median %6.1f ms  (quartiles %5.1f-%5.1f, min %5.1f, max %5.1f)\n",
			rt.name, ms(median(s)), ms(s[len(s)/4]), ms(s[(3*len(s))/4]), ms(s[0]), ms(s[len(s)-1]))
	}
	b, r := median(sorted(times["berth"])), median(sorted(times["runc"]))
	fmt.Printf("  ratio berth/runc = %.2f  (target <= 0.55)\n", float64(b)/float64(r))
	if c, ok := times["crun"]; ok {
		cm := median(sorted(c))
		fmt.Printf("  ratio berth/crun = %.2f  (target < 1)   crun/runc = %.2f\n", float64(b)/float64(cm), float64(cm)/float64(r))
	}
}

func sorted(d []time.Duration) []time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

func median(s []time.Duration) time.Duration {
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
