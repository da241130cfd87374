package dns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ServerEnv marks the server's process: its C constructor closes every
// inherited descriptor but 0-2 before Go starts (a spawner may hold
// descriptors without close-on-exec, such as the sockets that reserve a
// container's published ports, which a long-lived server must not keep).
const ServerEnv = "_BERTH_DNS_SERVER"

// Spawn starts a server and returns a check of whether the process it
// started still runs.
type Spawn func() (running func() bool, err error)

// errSpawnedGone: the server a Sync started ended before it listened
// (killed; or a second server, which exits at once).
var errSpawnedGone = errors.New("the name server it started ended before it listened")

// Sync makes the server of dir load the current View and open the
// sockets of every container in it, and waits until it has. When no
// server runs, it starts one with spawn if spawn is not nil, and else
// does nothing (the next server loads the View anyway). A server it
// started that ends before it listens is started again (three tries in
// all), rather than waited for to the timeout.
func Sync(ctx context.Context, dir string, spawn Spawn) error {
	var lastErr error
	for range 3 {
		c, err := dial(dir)
		if err != nil {
			if spawn == nil {
				return nil
			}
			running, err := spawn()
			if err != nil {
				return fmt.Errorf("start the name server: %w", err)
			}
			if c, err = waitDial(ctx, dir, running); errors.Is(err, errSpawnedGone) {
				lastErr = err
				continue
			} else if err != nil {
				return fmt.Errorf("the name server of %s did not start: %w (see %s)", dir, err, filepath.Join(dir, "server.log"))
			}
		}
		reply, err := ask(c, "sync")
		c.Close()
		if err == nil {
			if msg, ok := strings.CutPrefix(reply, "error: "); ok {
				return fmt.Errorf("the name server: %s", msg)
			}
			return nil
		}
		// The server went between our connect and its answer (an idle
		// exit, a kill). Without spawn, the next one loads the records
		// anyway; with it, once more.
		if spawn == nil {
			return nil
		}
		lastErr = err
	}
	return fmt.Errorf("the name server of %s: %w", dir, lastErr)
}

// Alive reports whether a server of dir runs.
func Alive(dir string) bool {
	f, err := os.Open(filepath.Join(dir, pidFile))
	if err != nil {
		return false
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil {
		return true
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// Stop ends the server of dir, if one runs, and waits until it has.
func Stop(ctx context.Context, dir string) error {
	f, err := os.Open(filepath.Join(dir, pidFile))
	if err != nil {
		return nil
	}
	defer f.Close()
	if c, err := dial(dir); err == nil {
		ask(c, "stop")
		c.Close()
	} else if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil {
		// Alive but deaf: its pid is in the file it holds locked.
		b, _ := io.ReadAll(f)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the name server of %s did not stop", dir)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func dial(dir string) (*net.UnixConn, error) {
	return net.DialUnix("unix", nil, &net.UnixAddr{Name: filepath.Join(dir, controlFile), Net: "unix"})
}

// waitDial waits for a server that running says was started to listen;
// once running says it has ended, one more dial (it may have found
// another server in charge, and exited) decides.
func waitDial(ctx context.Context, dir string, running func() bool) (*net.UnixConn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	delay := time.Millisecond
	for {
		gone := running != nil && !running()
		c, err := dial(dir)
		if err == nil {
			return c, nil
		}
		if gone {
			return nil, errors.Join(errSpawnedGone, err)
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

func ask(c *net.UnixConn, req string) (string, error) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req+"\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}
