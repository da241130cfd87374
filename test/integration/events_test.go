//go:build linux

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

type eventMsg struct {
	Type   string
	Action string
	Actor  struct {
		ID         string
		Attributes map[string]string
	}
	TimeNano int64 `json:"timeNano"`
}

// readEvents parses `events --format json` output: every line must be a
// whole event.
func readEvents(t *testing.T, out string) []eventMsg {
	t.Helper()
	var evs []eventMsg
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m eventMsg
		if err := json.Unmarshal([]byte(l), &m); err != nil || m.Type == "" || m.TimeNano == 0 {
			t.Fatalf("events printed a line that is not a whole event: %q (%v)", l, err)
		}
		evs = append(evs, m)
	}
	return evs
}

// berth events: a follower sees a container's life as it happens, with
// docker's actions and attributes; --since replays the journal; a torn
// line left by a writer killed mid-write is never shown, and nothing
// after it is lost; writers killed at random moments leave a journal
// whose every event reads whole.
func TestEngineEvents(t *testing.T) {
	e := newEngine(t)
	e.loadDemoImage()
	start := time.Now()
	follow := e.command("events", "--filter", "type=container", "--format", "json")
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer follow.Process.Kill()
	seen := make(chan eventMsg, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m eventMsg
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				seen <- m
			}
		}
		close(seen)
	}()
	time.Sleep(200 * time.Millisecond) // the follower is at the journal's end
	code, _, _ := e.exitCode("run", "--name", "ev", "--label", "tier=t", demoImage, "sh", "-c", "exit 5")
	if code != 5 {
		t.Fatalf("run exited %d", code)
	}
	var actions []string
	deadline := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case m, ok := <-seen:
			if !ok {
				t.Fatal("the follower ended")
			}
			if m.Actor.Attributes["name"] != "ev" {
				continue
			}
			actions = append(actions, m.Action)
			if m.Action == "die" {
				if m.Actor.Attributes["exitCode"] != "5" || m.Actor.Attributes["tier"] != "t" || m.Actor.Attributes["image"] != demoImage {
					t.Errorf("die event attributes: %v", m.Actor.Attributes)
				}
				done = true
			}
		case <-deadline:
			t.Fatalf("the follower saw %v and no die", actions)
		}
	}
	if strings.Join(actions, ",") != "create,start,die" {
		t.Errorf("the follower saw %v, want create, start, die", actions)
	}

	// Replay, filtered.
	since := strconv.FormatInt(start.Unix(), 10)
	out := e.run("events", "--since", since, "--until", "0s", "--filter", "container=ev", "--format", "json")
	replay := readEvents(t, out)
	if len(replay) != 3 || replay[2].Action != "die" {
		t.Fatalf("events --since replayed %+v", replay)
	}

	// A writer killed in the middle of its write left half a line.
	journal := filepath.Join(e.root, "events", "events.log")
	f, err := os.OpenFile(journal, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("\n{\"status\":\"die\",\"id\":\"half"))
	f.Close()
	e.run("rm", "ev")
	evs := readEvents(t, e.run("events", "--since", since, "--until", "0s", "--format", "json"))
	if last := evs[len(evs)-1]; last.Action != "destroy" || last.Actor.Attributes["name"] != "ev" {
		t.Errorf("the event after a torn line: %+v", last)
	}

	// Writers killed at random moments.
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := range 12 {
		cmd := e.command("run", "-d", "--name", fmt.Sprintf("k%d", i), demoImage, "true")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Intn(60)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
	}
	e.run("ps", "-a")
	readEvents(t, e.run("events", "--since", since, "--until", "0s", "--format", "json"))
}
