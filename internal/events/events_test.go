package events

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

func collect(t *testing.T, j *Journal, o ReadOptions) []Message {
	t.Helper()
	var out []Message
	if err := j.Read(context.Background(), o, func(m Message) error { out = append(out, m); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestJournalConcurrentWritersAndTornLines(t *testing.T) {
	j := Open(t.TempDir())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := j.Append(New(TypeContainer, "start", fmt.Sprintf("c%d-%d", w, i), map[string]string{"name": "x"})); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	// A writer killed in the middle of its write: half a line, then the
	// next event.
	f, _ := os.OpenFile(j.path(), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("\n{\"status\":\"die\",\"id\":\"torn"))
	f.Close()
	j.Append(New(TypeContainer, "die", "after", map[string]string{"exitCode": "3"}))
	got := collect(t, j, ReadOptions{})
	if len(got) != 401 {
		t.Fatalf("%d events, want 400 and the one after the torn line", len(got))
	}
	if last := got[400]; last.Actor.ID != "after" || last.Actor.Attributes["exitCode"] != "3" {
		t.Fatalf("the event after a torn line: %+v", last)
	}
	seen := map[string]bool{}
	for _, m := range got[:400] {
		seen[m.Actor.ID] = true
	}
	if len(seen) != 400 {
		t.Fatalf("%d distinct events of 400: some were interleaved or lost", len(seen))
	}
}

func TestJournalSinceUntilRotationAndFollow(t *testing.T) {
	j := Open(t.TempDir())
	j.maxSize = 2000
	first := New(TypeImage, "pull", "a", nil)
	first.TimeNano -= int64(time.Hour)
	first.Time = first.TimeNano / 1e9
	j.Append(first)
	for i := range 30 {
		j.Append(New(TypeContainer, "create", fmt.Sprint(i), nil))
	}
	if _, err := os.Stat(j.rotated()); err != nil {
		t.Fatalf("no rotation past the maximum size: %v", err)
	}
	recent := collect(t, j, ReadOptions{Since: time.Now().Add(-time.Minute)})
	all := collect(t, j, ReadOptions{})
	if len(all) == 0 || len(recent) != len(all)-boolInt(all[0].Actor.ID == "a") {
		t.Fatalf("since a minute ago: %d of %d", len(recent), len(all))
	}
	old := collect(t, j, ReadOptions{Until: time.Now().Add(-time.Minute)})
	for _, m := range old {
		if m.Actor.ID != "a" {
			t.Fatalf("--until an hour-old bound gave %+v", m)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan Message, 100)
	go j.Follow(ctx, ReadOptions{Poll: 5 * time.Millisecond}, func(m Message) error { got <- m; return nil })
	time.Sleep(50 * time.Millisecond)
	for i := range 40 { // rotates several times while followed
		j.Append(New(TypeContainer, "die", fmt.Sprintf("f%d", i), nil))
		time.Sleep(time.Millisecond)
	}
	for i := range 40 {
		select {
		case m := <-got:
			if m.Actor.ID != fmt.Sprintf("f%d", i) {
				t.Fatalf("follower got %s, want f%d", m.Actor.ID, i)
			}
		case <-ctx.Done():
			t.Fatalf("follower got %d of 40 new events", i)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestFilter(t *testing.T) {
	die := New(TypeContainer, "die", "abc123", map[string]string{"name": "web", "image": "busybox", "tier": "front", "exitCode": "1"})
	exec := New(TypeContainer, "exec_start: sh -c true", "abc123", map[string]string{"name": "web"})
	conn := New(TypeNetwork, "connect", "n1", map[string]string{"name": "net1", "container": "abc123"})
	for _, tc := range []struct {
		args []string
		m    Message
		want bool
	}{
		{[]string{"type=container"}, die, true},
		{[]string{"type=network"}, die, false},
		{[]string{"event=die", "event=start"}, die, true},
		{[]string{"event=exec_start"}, exec, true},
		{[]string{"container=web"}, die, true},
		{[]string{"container=abc"}, die, true},
		{[]string{"container=abc"}, conn, true},
		{[]string{"container=other"}, die, false},
		{[]string{"image=busybox", "event=die"}, die, true},
		{[]string{"image=busybox"}, New(TypeContainer, "start", "x", map[string]string{"image": "busybox:latest"}), true},
		{[]string{"image=localhost:5000/app"}, New(TypeContainer, "start", "x", map[string]string{"image": "localhost:5000/app:1"}), true},
		{[]string{"image=localhost"}, New(TypeContainer, "start", "x", map[string]string{"image": "localhost:5000/app"}), false},
		{[]string{"label=tier"}, die, true},
		{[]string{"label=tier=back"}, die, false},
		// Labels are all required, as docker's: not alternatives.
		{[]string{"label=tier=front", "label=name=web"}, die, true},
		{[]string{"label=tier=front", "label=tier=back"}, die, false},
		{[]string{"label=tier", "label=zone"}, die, false},
		{[]string{"network=net1"}, conn, true},
		{[]string{"network=net1"}, die, false},
		// The swarm's and the plugins' keys, as docker's: by an
		// actor's ID or name prefix; scope=local is every local event.
		{[]string{"scope=local"}, die, true},
		{[]string{"scope=swarm"}, die, false},
		{[]string{"daemon=nosuch"}, die, false},
		{[]string{"daemon=berth"}, New("daemon", "reload", "b1", map[string]string{"name": "berth-host"}), true},
		{[]string{"service=x"}, conn, false},
	} {
		f, err := ParseFilter(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Match(tc.m); got != tc.want {
			t.Errorf("%q on %s %s: %v, want %v", tc.args, tc.m.Type, tc.m.Action, got, tc.want)
		}
	}
	if _, err := ParseFilter([]string{"colour=red"}); err == nil {
		t.Error("an unknown filter key was accepted")
	}
	// The API's filters come unchecked: a key docker does not know is
	// ignored, as dockerd ignores it.
	if !(Filter{"colour": {"red"}, "type": {"container"}}).Match(die) {
		t.Error("an unknown key in the API's filter excluded the event")
	}
}
