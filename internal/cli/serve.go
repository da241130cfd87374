//go:build linux

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/dockerapi"
	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/remote"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/linux"
	"github.com/spf13/cobra"
)

// newServeCommand is `berth serve`: the optional daemon of the API
// sockets. Containers never depend on it: they run under their monitors
// whether it runs or not, and the CLI sees what it made.
func newServeCommand(g *globalOptions) *cobra.Command {
	var dockerSocket string
	cmd := &cobra.Command{
		Use:   "serve [OPTIONS]",
		Short: "Serve the Docker Engine API on a unix socket (the socket is root-equivalent)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			// Pulls use a request's X-Registry-Auth before the
			// server's own credentials.
			cfg, err := remote.LoadConfig(g.registryConfig)
			if err != nil {
				return err
			}
			reg := remote.New(remote.Options{Registries: cfg.Registries, CertsDir: g.certsDir, UserAgent: "berth/" + Version,
				Credentials: dockerapi.RequestCredentials{Fallback: keychainCredentials{g.keychain()}}})
			s, err := image.Open(image.Options{Root: g.root, Registry: reg, InUse: g.inUse})
			if err != nil {
				return err
			}
			e, err := engine.Open(engine.Options{Root: g.root, State: g.state, Images: s,
				Driver: linux.NewDriver(engine.RuntimeRoot(g.state)), Drivers: []runtime.Driver{g.vmDriver()}, Reap: true})
			if err != nil {
				return err
			}
			defer e.Close()
			ctx, cancel := signalContext()
			defer cancel()
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			return serveDocker(ctx, e, dockerSocket, log)
		},
	}
	cmd.Flags().StringVar(&dockerSocket, "docker-socket", "/run/berth/docker.sock", "the Docker API's unix socket")
	return cmd
}

// serveDocker listens on path (mode 0660, group berth if there is one)
// until ctx ends.
func serveDocker(ctx context.Context, e *engine.Engine, path string, log *slog.Logger) error {
	dumpStacksOn(ctx, syscall.SIGUSR1, os.Stderr, log)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// A socket left by a killed serve: refuse one that answers.
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%s: another server listens there", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	gid := 0
	if grp, err := user.LookupGroup("berth"); err == nil {
		gid, _ = strconv.Atoi(grp.Gid)
	}
	if err := os.Chown(path, 0, gid); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		return err
	}
	srv := &http.Server{Handler: dockerapi.New(e, Version, log, dockerViews()), ReadHeaderTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("serving the Docker API", "socket", path, "api", dockerapi.APIVersion)
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Markers around a stack dump in serve's log (dockerd's words).
const (
	stackDumpBegin = "=== BEGIN goroutine stack dump ==="
	stackDumpEnd   = "=== END goroutine stack dump ==="
)

// dumpStacksOn writes every goroutine's stack to w each time sig comes,
// until ctx ends, as dockerd does on SIGUSR1: what an operator reads to
// see what a stuck or growing daemon is doing, without stopping it.
func dumpStacksOn(ctx context.Context, sig os.Signal, w io.Writer, log *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
			}
			buf := make([]byte, 1<<20)
			for {
				n := goruntime.Stack(buf, true)
				if n < len(buf) {
					buf = buf[:n]
					break
				}
				buf = make([]byte, 2*len(buf))
			}
			log.Info("goroutine stacks follow", "signal", sig.String(), "goroutines", goruntime.NumGoroutine())
			// One write: nothing else logged lands inside the dump.
			w.Write([]byte(stackDumpBegin + "\n" + string(buf) + "\n" + stackDumpEnd + "\n"))
		}
	}()
}
