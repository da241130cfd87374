// Command runtime benchmarks `run` of /bin/true in a busybox bundle:
// create + start + wait + delete, berth against runc, alternating so both
// see the same machine noise, and prints medians and the ratio.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"
)

func main() {
	n := flag.Int("n", 30, "runs per runtime")
	bundle := flag.String("bundle", "", "bundle directory (process.args = /bin/true)")
	berth := flag.String("berth", "bin/berth-runtime", "berth runtime binary")
	runc := flag.String("runc", "runc", "runc binary")
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
	runtimes := []struct{ name, bin string }{{"berth", *berth}, {"runc", *runc}}
	times := map[string][]time.Duration{}
	for i := -*warmup; i < *n; i++ {
		for _, rt := range runtimes {
			id := fmt.Sprintf("bench-%s-%d", rt.name, i+*warmup)
			cmd := exec.Command(rt.bin, "--root", filepath.Join(root, rt.name), "run", "--bundle", *bundle, id)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			d := time.Since(start)
			if err != nil {
				fail(fmt.Errorf("%s run: %v: %s", rt.name, err, out))
			}
			if i >= 0 {
				times[rt.name] = append(times[rt.name], d)
			}
		}
	}
	b, r := median(times["berth"]), median(times["runc"])
	fmt.Printf("runtime run /bin/true (create+start+wait+delete), %d runs each, alternating\n", *n)
	fmt.Printf("  berth  median %6.1f ms  (min %6.1f)\n", ms(b), ms(minOf(times["berth"])))
	fmt.Printf("  runc   median %6.1f ms  (min %6.1f)\n", ms(r), ms(minOf(times["runc"])))
	fmt.Printf("  ratio berth/runc = %.2f\n", float64(b)/float64(r))
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minOf(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		if x < m {
			m = x
		}
	}
	return m
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
