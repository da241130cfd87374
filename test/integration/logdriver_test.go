package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var criLogLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) ([FP]) (.*)$`)

// TestLogDrivers: --log-driver k8s-file writes the CRI's format (what a
// kubelet reads) and `logs` reads it back; none keeps nothing and says so;
// others are refused by name.
func TestLogDrivers(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	long := strings.Repeat("x", 40000) // more than one line's worth of the monitor's buffer
	path := filepath.Join(t.TempDir(), "pod", "0.log")
	os.MkdirAll(filepath.Dir(path), 0o755)
	e.run("run", "--name", "cri", "--log-driver", "k8s-file", "--log-opt", "path="+path, demoImage,
		"sh", "-c", "echo out; echo err >&2; echo "+long+"; printf partial")
	if got := e.inspect("cri"); got.LogPath != path || got.HostConfig.LogConfig.Type != "k8s-file" {
		t.Errorf("inspect: LogPath %q, LogConfig %+v", got.LogPath, got.HostConfig.LogConfig)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out, errs strings.Builder
	var tags []string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		m := criLogLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a CRI log line: %.100q", l)
		}
		w := &out
		if m[1] == "stderr" {
			w = &errs
		}
		w.WriteString(m[3])
		if m[2] == "F" {
			w.WriteString("\n")
		}
		tags = append(tags, m[1]+" "+m[2])
	}
	if want := "out\n" + long + "\npartial"; out.String() != want || errs.String() != "err\n" {
		t.Errorf("the CRI lines put together: stdout %.60q (%d bytes, want %d), stderr %q", out.String(), out.Len(), len(want), errs.String())
	}
	if !strings.Contains(strings.Join(tags, ","), "stdout P,stdout P") || tags[len(tags)-1] != "stdout P" {
		t.Errorf("a long line is written in parts and an unfinished one as a part: tags %v", tags)
	}
	stdout, stderr, err := e.try("logs", "cri")
	if err != nil || stdout != "out\n"+long+"\npartial" || stderr != "err\n" {
		t.Errorf("berth logs of a k8s-file container: %v %.60q %q", err, stdout, stderr)
	}
	if got, _, _ := e.try("logs", "--tail", "1", "cri"); got != "partial" {
		t.Errorf("logs --tail 1: %q", got)
	}
	e.run("rm", "cri")
	if _, err := os.Stat(path); err != nil {
		t.Errorf("a log written where --log-opt path said is the user's, kept after rm: %v", err)
	}

	// Its own file by default, followed while it is written.
	e.run("run", "-d", "--name", "follow", "--log-driver", "k8s-file", demoImage, "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done")
	if got, _, err := e.try("logs", "-f", "follow"); err != nil || got != "line1\nline2\nline3\n" {
		t.Errorf("logs -f of a k8s-file container: %v %q", err, got)
	}
	if p := e.inspect("follow").LogPath; !strings.HasSuffix(p, ".log") || strings.HasSuffix(p, "-json.log") {
		t.Errorf("k8s-file's own path: %s", p)
	}
	e.run("rm", "follow")

	// none: nothing kept, and logs says so.
	e.run("run", "--name", "quiet", "--log-driver", "none", demoImage, "sh", "-c", "echo dropped")
	if c := e.inspect("quiet"); c.LogPath != "" || c.HostConfig.LogConfig.Type != "none" {
		t.Errorf("inspect of a none container: LogPath %q, LogConfig %+v", c.LogPath, c.HostConfig.LogConfig)
	}
	if files, _ := filepath.Glob(filepath.Join(e.root, "containers", "*", "*.log")); len(files) != 0 {
		t.Errorf("--log-driver none wrote %v", files)
	}
	if _, stderr, err := e.try("logs", "quiet"); err == nil || !strings.Contains(stderr, "does not support reading") {
		t.Errorf("logs of a none container: %v %q", err, stderr)
	}
	// A container whose output nobody keeps still runs to its end.
	e.run("run", "-d", "--name", "chatty", "--log-driver", "none", demoImage, "sh", "-c", "yes | head -c 50000000; echo done > /tmp/done; sleep 100")
	waitFor(t, 60*time.Second, "the chatty container to write all", func() bool {
		out, _, _ := e.try("exec", "chatty", "cat", "/tmp/done")
		return out == "done\n"
	})
	e.run("rm", "-f", "quiet", "chatty")

	for _, bad := range [][]string{
		{"--log-driver", "syslog"},
		{"--log-driver", "k8s-file", "--log-opt", "path=relative.log"},
		{"--log-driver", "json-file", "--log-opt", "path=/tmp/x.log"},
		{"--log-driver", "none", "--log-opt", "tag=x"},
	} {
		args := append(append([]string{"run", "--rm"}, bad...), demoImage, "true")
		if _, stderr, err := e.try(args...); err == nil || !strings.Contains(stderr, "--log-") {
			t.Errorf("berth %s: %v %q", strings.Join(args, " "), err, stderr)
		}
	}
	e.checkNothingLeft()
}
