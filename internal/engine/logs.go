//go:build linux

package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/berth-dev/berth/internal/engine/store"
	"golang.org/x/sys/unix"
)

// LogOptions are `berth logs`' settings.
type LogOptions struct {
	Follow     bool
	Since      time.Time // zero: from the start
	Until      time.Time // zero: no end
	Tail       int       // lines from the end; negative: all
	Timestamps bool
}

// LogEntry is one line of a container's json-file log.
type LogEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// Logs writes a container's log to stdout and stderr (by stream). With
// Follow it keeps reading until the container stops or ctx ends.
func (e *Engine) Logs(ctx context.Context, ref string, o LogOptions, stdout, stderr io.Writer) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	if c.HostConfig.LogDriver == LogNone {
		return fmt.Errorf("container %s: %w (its --log-driver is none)", c.Name, ErrLogNotReadable)
	}
	newLogReader := func(f *os.File) *logReader { return newLogReaderOf(f, c.HostConfig.LogDriver) }
	emit := func(ent LogEntry) error {
		if !o.Since.IsZero() && ent.Time.Before(o.Since) {
			return nil
		}
		if !o.Until.IsZero() && ent.Time.After(o.Until) {
			return nil
		}
		w := stdout
		if ent.Stream == "stderr" {
			w = stderr
		}
		line := ent.Log
		if o.Timestamps {
			line = ent.Time.Format(time.RFC3339Nano) + " " + line
		}
		_, err := io.WriteString(w, line)
		return err
	}
	// The rotated files, oldest first, then the live one.
	var files []string
	for i := c.HostConfig.LogMaxFiles; i >= 1; i-- {
		p := c.LogPath + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err == nil {
			files = append(files, p)
		}
	}
	live, err := os.Open(c.LogPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var tail []LogEntry
	useTail := o.Tail >= 0
	collect := func(ent LogEntry) error {
		if !useTail {
			return emit(ent)
		}
		if o.Tail == 0 {
			return nil
		}
		tail = append(tail, ent)
		if len(tail) > o.Tail {
			tail = tail[1:]
		}
		return nil
	}
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		err = newLogReader(f).read(collect)
		f.Close()
		if err != nil {
			return err
		}
	}
	var r *logReader
	if live != nil {
		defer func() { live.Close() }()
		r = newLogReader(live)
		if err := r.read(collect); err != nil {
			return err
		}
	}
	for _, ent := range tail {
		if err := emit(ent); err != nil {
			return err
		}
	}
	if !o.Follow {
		return nil
	}
	for {
		running := true
		cur, err := e.Get(ctx, c.ID)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			running = false
		} else {
			running = isRunning(cur) || cur.State.Status == StatusCreated && alive(cur.State.MonitorPid, cur.State.MonitorStart)
		}
		if live == nil {
			if f, err := os.Open(c.LogPath); err == nil {
				live = f
				r = newLogReader(live)
			}
		}
		if r != nil {
			// With max-file=1 the monitor truncates the file in place:
			// start over from its beginning.
			if fi, err := live.Stat(); err == nil {
				if off, err := live.Seek(0, io.SeekCurrent); err == nil && fi.Size() < off {
					live.Seek(0, io.SeekStart)
					r.pending = nil
				}
			}
			if err := r.read(emit); err != nil {
				return err
			}
			// Rotated: the path names a new file. Finish the old one, then
			// read the files rotated after it (newest last), then the new
			// live one.
			if st, err := os.Stat(c.LogPath); err == nil {
				if cur, err := live.Stat(); err == nil && !os.SameFile(st, cur) {
					if err := r.read(emit); err != nil {
						return err
					}
					live.Close()
					newer := c.HostConfig.LogMaxFiles
					for i := 1; i <= c.HostConfig.LogMaxFiles; i++ {
						if fi, err := os.Stat(c.LogPath + "." + strconv.Itoa(i)); err == nil && os.SameFile(fi, cur) {
							newer = i - 1
							break
						}
					}
					for i := newer; i >= 1; i-- {
						if f, err := os.Open(c.LogPath + "." + strconv.Itoa(i)); err == nil {
							err = newLogReader(f).read(emit)
							f.Close()
							if err != nil {
								return err
							}
						}
					}
					live, _ = os.Open(c.LogPath)
					r = nil
					if live != nil {
						r = newLogReader(live)
					}
					continue
				}
			}
		}
		if !running {
			if cur != nil && (cur.State.Status == StatusExited || cur.State.Status == StatusDead) {
				// The end of a follow says the container stopped, as
				// Wait's does (`logs -f X && rm X`): the exit may be
				// derived from the exit file while the monitor's handler
				// is still recording it.
				if err := e.waitExitRecorded(ctx, c.ID, cur.State.StartedAt); err != nil {
					return err
				}
			}
			if r != nil {
				return r.read(emit)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logReader decodes the complete lines of a log file (of the container's
// log driver); a partial last line (being written) waits for the next
// read.
type logReader struct {
	f       *os.File
	pending []byte
	buf     []byte
	decode  func([]byte) (LogEntry, error)
}

func newLogReaderOf(f *os.File, driver string) *logReader {
	decode := func(line []byte) (LogEntry, error) {
		var ent LogEntry
		err := json.Unmarshal(line, &ent)
		return ent, err
	}
	if driver == LogK8sFile {
		decode = parseCRILine
	}
	return &logReader{f: f, buf: make([]byte, 64<<10), decode: decode}
}

func (l *logReader) read(fn func(LogEntry) error) error {
	for {
		n, err := l.f.Read(l.buf)
		data := l.buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				l.pending = append(l.pending, data...)
				break
			}
			line := data[:i]
			if len(l.pending) > 0 {
				line = append(l.pending, line...)
				l.pending = nil
			}
			data = data[i+1:]
			ent, derr := l.decode(line)
			if derr != nil {
				return fmt.Errorf("log %s: line %q: %w", l.f.Name(), truncate(line, 80), derr)
			}
			if ferr := fn(ent); ferr != nil {
				return ferr
			}
		}
		if err != nil || n == 0 {
			return nil
		}
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// ReopenLog has a running container's monitor start a new log file at
// the log's path, for whoever rotates the log by moving it away (the
// kubelet, through the CRI's ReopenContainerLog). It returns once the new
// file exists.
func (e *Engine) ReopenLog(ctx context.Context, ref string) error {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return err
	}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused || !alive(c.State.MonitorPid, c.State.MonitorStart) {
		return fmt.Errorf("container %s is not running: %w", c.Name, ErrInvalidState)
	}
	if c.HostConfig.LogDriver == LogNone {
		return nil
	}
	if err := unix.Kill(c.State.MonitorPid, unix.SIGUSR1); err != nil {
		return fmt.Errorf("container %s: signal its monitor: %w", c.Name, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(c.LogPath); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("container %s: its monitor did not reopen %s within 5s", c.Name, c.LogPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
