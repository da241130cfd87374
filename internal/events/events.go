// Package events is berth's event journal: an append-only file under the
// root that every berth process writes (one write(2) per event) and that
// `berth events` reads and follows. There is no daemon to hold events in
// memory, so the file is the stream.
//
// Invariants:
//   - Every event is one line of JSON written with a single O_APPEND
//     write, preceded by a newline: concurrent writers never interleave,
//     and a writer killed in the middle of its write leaves at worst a torn
//     line of its own (the next event starts on a line of its own), which
//     readers skip. A reader never shows half an event.
//   - The journal rotates by size: at MaxSize the file is renamed to
//     events.log.1 (replacing the last one) under the journal's lock;
//     readers follow the rename. A follower that sleeps through more
//     than two rotations (32 MiB of events in one poll) misses the ones
//     in between.
package events

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Types of objects events are about.
const (
	TypeContainer = "container"
	TypeImage     = "image"
	TypeNetwork   = "network"
	TypeVolume    = "volume"
)

// AttrNamespace is the attribute that names a container's store
// namespace when it is not the default one: each front end shows the
// events of its own namespace only (InNamespace).
const AttrNamespace = "io.berth.namespace"

// InNamespace says whether m belongs to store namespace ns: a container
// event of that namespace, or any other event (networks, volumes and
// images are shared).
func InNamespace(m Message, ns string) bool {
	if m.Type != TypeContainer {
		return true
	}
	return m.Actor.Attributes[AttrNamespace] == ns
}

// Actor is the object an event is about.
type Actor struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"`
}

// Message is one event, in docker's shape (the moby API's events.Message):
// status, id and from repeat Action, Actor.ID and the image for old
// clients.
type Message struct {
	Status   string `json:"status,omitempty"`
	ID       string `json:"id,omitempty"`
	From     string `json:"from,omitempty"`
	Type     string `json:"Type"`
	Action   string `json:"Action"`
	Actor    Actor  `json:"Actor"`
	Scope    string `json:"scope"`
	Time     int64  `json:"time"`
	TimeNano int64  `json:"timeNano"`
}

// When is the event's time.
func (m Message) When() time.Time { return time.Unix(0, m.TimeNano) }

// MaxSize is the size at which the journal rotates.
const MaxSize = 16 << 20

// Journal is the event journal of one root.
type Journal struct {
	dir     string
	maxSize int64
}

// Open returns the journal kept in dir (created at the first event).
func Open(dir string) *Journal { return &Journal{dir: dir, maxSize: MaxSize} }

func (j *Journal) path() string    { return filepath.Join(j.dir, "events.log") }
func (j *Journal) rotated() string { return filepath.Join(j.dir, "events.log.1") }

// New makes a message about an object of type typ, now.
func New(typ, action, id string, attrs map[string]string) Message {
	now := time.Now()
	if attrs == nil {
		attrs = map[string]string{}
	}
	m := Message{Type: typ, Action: action, Actor: Actor{ID: id, Attributes: attrs}, Scope: "local", Time: now.Unix(), TimeNano: now.UnixNano()}
	if typ == TypeContainer || typ == TypeImage {
		m.Status, m.ID = action, id
		if typ == TypeContainer {
			m.From = attrs["image"]
		}
	}
	return m
}

// Append writes m. Errors are for the caller to ignore or log: an event
// lost is never a reason to fail the operation it reports.
func (j *Journal) Append(m Message) error {
	line, err := json.Marshal(m)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, len(line)+2)
	buf = append(append(append(buf, '\n'), line...), '\n')
	f, err := os.OpenFile(j.path(), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(j.dir, 0o700); err == nil {
			f, err = os.OpenFile(j.path(), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
		}
	}
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	_, err = f.Write(buf)
	st, serr := f.Stat()
	f.Close()
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	if serr == nil && st.Size() >= j.maxSize {
		j.rotate(st)
	}
	return nil
}

// rotate renames a full journal aside, under the lock, unless another
// writer did already (the file is no longer the one that was full).
func (j *Journal) rotate(full os.FileInfo) {
	l, err := os.OpenFile(filepath.Join(j.dir, "events.lock"), os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return
	}
	defer l.Close()
	if syscall.Flock(int(l.Fd()), syscall.LOCK_EX) != nil {
		return
	}
	if cur, err := os.Stat(j.path()); err == nil && os.SameFile(cur, full) {
		os.Rename(j.path(), j.rotated())
	}
}

// ReadOptions select what Read gives.
type ReadOptions struct {
	// Since and Until bound the events' times (zero: no bound).
	Since, Until time.Time
	// Follow keeps reading new events until ctx ends or Until passes.
	Follow bool
	// Poll is how often a follower looks for new events (default 50 ms).
	Poll time.Duration
}

// Read calls fn for every event in the journal (the rotated file first)
// within the options' bounds, in the order they were written, skipping
// lines that are not whole events.
func (j *Journal) Read(ctx context.Context, o ReadOptions, fn func(Message) error) error {
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	emit := func(line []byte) error {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			return nil
		}
		var m Message
		if json.Unmarshal(line, &m) != nil || m.TimeNano == 0 || m.Type == "" {
			return nil // torn or foreign: never shown half
		}
		t := m.When()
		if !o.Since.IsZero() && t.Before(o.Since) || !o.Until.IsZero() && t.After(o.Until) {
			return nil
		}
		return fn(m)
	}
	cur, err := os.Open(j.path())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("events: %w", err)
	}
	// The rotated file, when it is not the one just opened (a rotation
	// between the two opens).
	if old, err := os.Open(j.rotated()); err == nil {
		same := false
		if cur != nil {
			a, _ := cur.Stat()
			b, _ := old.Stat()
			same = a != nil && b != nil && os.SameFile(a, b)
		}
		if !same {
			err := readLines(old, emit, true)
			old.Close()
			if err != nil {
				if cur != nil {
					cur.Close()
				}
				return err
			}
		} else {
			old.Close()
		}
	}
	if !o.Follow {
		if cur == nil {
			return nil
		}
		defer cur.Close()
		return readLines(cur, emit, true)
	}
	return j.follow(ctx, cur, o, emit)
}

// Follow calls fn for every event written from now on (and, with
// o.Since, those since then first), until ctx ends or o.Until passes.
func (j *Journal) Follow(ctx context.Context, o ReadOptions, fn func(Message) error) error {
	o.Follow = true
	if !o.Since.IsZero() {
		return j.Read(ctx, o, fn)
	}
	cur, err := os.Open(j.path())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("events: %w", err)
	}
	if cur != nil {
		// From the end: a line being written there is finished by its
		// writer, and the next event starts on a line of its own.
		if _, err := cur.Seek(0, io.SeekEnd); err != nil {
			cur.Close()
			return fmt.Errorf("events: %w", err)
		}
	}
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	return j.follow(ctx, cur, o, func(line []byte) error {
		line = bytes.TrimSpace(line)
		var m Message
		if len(line) == 0 || json.Unmarshal(line, &m) != nil || m.TimeNano == 0 || m.Type == "" {
			return nil
		}
		if !o.Until.IsZero() && m.When().After(o.Until) {
			return nil
		}
		return fn(m)
	})
}

// follow reads cur (nil: the journal does not exist yet) and what is
// appended to it, switching to the new file after a rotation.
func (j *Journal) follow(ctx context.Context, cur *os.File, o ReadOptions, emit func([]byte) error) error {
	var r *bufio.Reader
	var partial []byte
	defer func() {
		if cur != nil {
			cur.Close()
		}
	}()
	for {
		if cur == nil {
			if f, err := os.Open(j.path()); err == nil {
				cur, r, partial = f, bufio.NewReader(f), nil
			}
		} else if r == nil {
			r = bufio.NewReader(cur)
		}
		if r != nil {
			for {
				line, err := r.ReadBytes('\n')
				if err == io.EOF {
					// An unfinished line: its end may still come.
					partial = append(partial, line...)
					break
				}
				if err != nil {
					return fmt.Errorf("events: %w", err)
				}
				if len(partial) > 0 {
					line = append(partial, line...)
					partial = nil
				}
				if err := emit(line); err != nil {
					return err
				}
			}
			// Rotated: the file at the path is another one. What the old
			// one got meanwhile is read on the next round, then the
			// switch.
			if st, err := os.Stat(j.path()); err == nil {
				if ours, err := cur.Stat(); err == nil && !os.SameFile(st, ours) {
					if rest, _ := io.ReadAll(r); len(rest) > 0 {
						partial = append(partial, rest...)
						for _, l := range bytes.Split(partial, []byte("\n")) {
							if err := emit(l); err != nil {
								return err
							}
						}
					}
					// Two rotations between polls: the file between
					// ours and the new one is the rotated one now.
					if mid, err := os.Open(j.rotated()); err == nil {
						if a, err := mid.Stat(); err == nil && !os.SameFile(a, ours) {
							if err := readLines(mid, emit, true); err != nil {
								mid.Close()
								return err
							}
						}
						mid.Close()
					}
					cur.Close()
					cur, r, partial = nil, nil, nil
					continue
				}
			}
		}
		if !o.Until.IsZero() && time.Now().After(o.Until) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Poll):
		}
	}
}

// readLines calls emit for every line of r; with last, a final line
// without its newline is read as well (whole or torn, emit decides).
func readLines(r io.Reader, emit func([]byte) error, last bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && (err == nil || last) {
			if e := emit(line); e != nil {
				return e
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("events: %w", err)
		}
	}
}

// ForRoot is the journal of a berth root (<root>/events).
func ForRoot(root string) *Journal { return Open(filepath.Join(root, "events")) }
