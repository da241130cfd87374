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

	"github.com/berth-dev/berth/internal/cri"
	"github.com/berth-dev/berth/internal/dockerapi"
	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/remote"
	"github.com/berth-dev/berth/internal/network/cni"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/linux"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

// newServeCommand is `berth serve`: the optional daemon of the API
// sockets. Containers never depend on it: they run under their monitors
// whether it runs or not, and the CLI sees what it made.
func newServeCommand(g *globalOptions) *cobra.Command {
	var dockerSocket, criSocket string
	cmd := &cobra.Command{
		Use:   "serve [OPTIONS]",
		Short: "Serve the Docker Engine API and the Kubernetes CRI on unix sockets (each socket is root-equivalent)",
		Long: `Serve the Docker Engine API (--docker-socket) and the Kubernetes CRI v1
(--cri-socket) on unix sockets, mode 0660, group berth if it exists. With
neither flag both are served on their default paths; naming one serves only
the APIs named. Either socket gives its users the power of root on
this host. Containers run under their own monitors and do not depend on
serve: stopping or restarting it leaves them running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("docker-socket") && !cmd.Flags().Changed("cri-socket") {
				criSocket = ""
			} else if cmd.Flags().Changed("cri-socket") && !cmd.Flags().Changed("docker-socket") {
				dockerSocket = ""
			}
			// Pulls use a request's X-Registry-Auth before the
			// server's own credentials.
			cfg, err := remote.LoadConfig(g.registryConfig)
			if err != nil {
				return err
			}
			reg := remote.New(remote.Options{Registries: cfg.Registries, CertsDir: g.certsDir, UserAgent: "berth/" + Version,
				Credentials: dockerapi.RequestCredentials{Fallback: cri.RequestCredentials{Fallback: keychainCredentials{g.keychain()}}}})
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
			dumpStacksOn(ctx, syscall.SIGUSR1, os.Stderr, log)
			if dockerSocket == "" && criSocket == "" {
				return errors.New("serve: no socket to serve on: give --docker-socket PATH or --cri-socket PATH")
			}
			// Both listen before either serves: a socket that cannot be
			// had fails the start, not half of it.
			var servers []func() error
			if dockerSocket != "" {
				l, err := listenUnix(dockerSocket)
				if err != nil {
					return err
				}
				defer os.Remove(dockerSocket)
				servers = append(servers, func() error { return serveDocker(ctx, e, l, log) })
			}
			if criSocket != "" {
				l, err := listenUnix(criSocket)
				if err != nil {
					return err
				}
				defer os.Remove(criSocket)
				servers = append(servers, func() error { return serveCRI(ctx, e, l, log) })
			}
			errs := make(chan error, len(servers))
			for _, run := range servers {
				go func() { errs <- run() }()
			}
			var first error
			for range servers {
				if err := <-errs; err != nil && first == nil {
					first = err
					cancel() // one failed: stop the other
				}
			}
			return first
		},
	}
	cmd.Flags().StringVar(&dockerSocket, "docker-socket", "/run/berth/docker.sock", "the Docker API's unix socket")
	cmd.Flags().StringVar(&criSocket, "cri-socket", "/run/berth/berth.sock", "the Kubernetes CRI's unix socket")
	return cmd
}

// listenUnix listens on path, mode 0660, group berth if there is one. A
// socket left by a killed serve is replaced; one that answers is refused.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another server listens there", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	gid := 0
	if grp, err := user.LookupGroup("berth"); err == nil {
		gid, _ = strconv.Atoi(grp.Gid)
	}
	if err := os.Chown(path, 0, gid); err != nil {
		l.Close()
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// serveCRI serves the CRI's runtime and image services on l until ctx
// ends, then stops gracefully (in-flight calls finish, 5 s at most).
func serveCRI(ctx context.Context, e *engine.Engine, l net.Listener, log *slog.Logger) error {
	s := cri.New(e, Version, log, func() error { return cni.CheckPlugins(nil, "bridge", "host-local", "portmap", "loopback") })
	g := grpc.NewServer(grpc.ChainUnaryInterceptor(s.UnaryLogger), grpc.MaxRecvMsgSize(16<<20))
	s.Register(g)
	go func() {
		<-ctx.Done()
		done := make(chan struct{})
		go func() { g.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			g.Stop()
		}
	}()
	log.Info("serving the CRI", "socket", l.Addr().String(), "api", "v1")
	if err := g.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// serveDocker serves the Docker API on l until ctx ends.
func serveDocker(ctx context.Context, e *engine.Engine, l net.Listener, log *slog.Logger) error {
	srv := &http.Server{Handler: dockerapi.New(e, Version, log, dockerViews()), ReadHeaderTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("serving the Docker API", "socket", l.Addr().String(), "api", dockerapi.APIVersion)
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
