//go:build linux

package dockerapi

import "testing"

func TestEvictableExec(t *testing.T) {
	code := 0
	execs := map[string]*execRecord{
		"running-old":   {id: "running-old", seq: 1, started: true, running: true},
		"unstarted-old": {id: "unstarted-old", seq: 2},
		"done-new":      {id: "done-new", seq: 9, started: true, exitCode: &code},
		"done-old":      {id: "done-old", seq: 5, started: true, exitCode: &code},
		"unstarted-new": {id: "unstarted-new", seq: 7},
	}
	for _, want := range []string{"done-old", "done-new", "unstarted-old", "unstarted-new", ""} {
		got := evictableExec(execs)
		if got != want {
			t.Fatalf("evicted %q, want %q", got, want)
		}
		delete(execs, got)
	}
}
