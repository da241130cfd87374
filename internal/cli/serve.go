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
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/cri"
	"github.com/berth-dev/berth/internal/dockerapi"
	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/image/remote"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/linux"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"k8s.io/klog/v2"
)

// newServeCommand is `berth serve`: the optional daemon of the API
// sockets. Containers never depend on it: they run under their monitors
// whether it runs or not, and the CLI sees what it made.
func newServeCommand(g *globalOptions) *cobra.Command {
	var dockerSocket, criSocket, streamAddress string
	var hosts []string
	warmPodNetwork := true
	podNet := cri.PodNetwork{ConfDir: cri.DefaultCNIConfDir, BinDirs: cri.DefaultCNIBinDirs}
	var tlsOpts dockerapi.TLSOptions
	level := logLevel{slog.LevelInfo}
	cmd := &cobra.Command{
		Use:   "serve [OPTIONS]",
		Short: "Serve the Docker Engine API and the Kubernetes CRI (each socket is root-equivalent)",
		Long: `Serve the Docker Engine API (--docker-socket, and --host for more listeners:
unix sockets, or TCP with TLS and client certificates) and the Kubernetes
CRI v1 (--cri-socket), with its streaming server for exec, attach and
port-forward sessions on --stream-address. Unix sockets are mode 0660,
group berth if it exists. With none of --docker-socket, --host and --cri-socket both APIs
are served on their default sockets; naming one serves only what is named.
Every socket gives its users the power of root on this host. Containers
run under their own monitors and do not depend on serve: stopping or
restarting it leaves them running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dockerNamed := cmd.Flags().Changed("docker-socket") || len(hosts) > 0
			criNamed := cmd.Flags().Changed("cri-socket")
			switch {
			case dockerNamed && !criNamed:
				criSocket = ""
			case criNamed && !dockerNamed:
				hosts = nil
			}
			if (dockerNamed || !criNamed) && (len(hosts) == 0 || cmd.Flags().Changed("docker-socket")) && dockerSocket != "" {
				hosts = append([]string{"unix://" + dockerSocket}, hosts...)
			}
			if len(hosts) == 0 && criSocket == "" {
				return errors.New("serve: nothing to serve on: give --docker-socket PATH, --host or --cri-socket PATH")
			}
			if podNet.Template != "" {
				if podNet.Mode != cri.PodNetworkCNI {
					return errors.New("serve: --cni-conf-template renders the node's CNI configuration: it needs --pod-network cni")
				}
				if _, err := cri.LoadTemplate(podNet.Template); err != nil {
					return err
				}
			}
			// Every listener before the engine: a bad flag fails
			// before anything is opened, and a socket that cannot be
			// had fails the start, not half of it.
			listeners, err := listenDocker(hosts, tlsOpts)
			if err != nil {
				return err
			}
			defer func() {
				for _, l := range listeners {
					l.Close()
				}
			}()
			var criListener, streamListener net.Listener
			if criSocket != "" {
				// On failure the deferred Close of the Docker API's
				// unix listeners unlinks their sockets.
				if criListener, err = listenUnix(criSocket); err != nil {
					return err
				}
				defer os.Remove(criSocket)
				if streamListener, err = listenStreams(streamAddress); err != nil {
					criListener.Close()
					return err
				}
				defer streamListener.Close()
			}
			// Pulls use a request's credentials (X-Registry-Auth, the
			// CRI's AuthConfig) before the server's own.
			cfg, err := remote.LoadConfig(g.registryConfig)
			if err != nil {
				return err
			}
			reg := remote.New(remote.Options{Registries: cfg.Registries, CertsDir: g.certsDir, UserAgent: "berth/" + Version, LoginCommand: "docker login",
				Credentials: remote.RequestCredentials{Fallback: keychainCredentials{g.keychain()}}})
			s, err := image.Open(image.Options{Root: g.root, Registry: reg, InUse: g.inUse})
			if err != nil {
				return err
			}
			e, err := engine.Open(engine.Options{Root: g.root, State: g.state, Images: s,
				Driver: linux.NewDriver(engine.RuntimeRoot(g.state)), Drivers: []runtime.Driver{g.vmDriver()}, Reap: true, Namespace: g.namespace,
				SpareMonitor:   os.Getenv("BERTH_SPARE_MONITOR") != "0",
				WarmPodNetwork: warmPodNetwork && criSocket != "" && (podNet.Mode == "" || podNet.Mode == cri.PodNetworkCNI)})
			if err != nil {
				return err
			}
			defer e.Close()
			ctx, cancel := signalContext()
			defer cancel()
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level.Level}))
			dumpStacksOn(ctx, syscall.SIGUSR1, os.Stderr, log)
			// The network DELs an earlier serve deferred and did not run
			// (killed, or a DEL failed): beside the servers' start.
			go func() {
				if err := e.SweepDeferredDels(ctx); err != nil {
					log.Warn("deferred network DELs left by an earlier serve", "err", err)
				}
			}()
			var servers []func() error
			if len(listeners) > 0 {
				servers = append(servers, func() error { return serveDocker(ctx, e, listeners, log) })
			}
			if criListener != nil {
				servers = append(servers, func() error { return serveCRI(ctx, e, criListener, streamListener, podNet, log) })
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
	cmd.Flags().StringVar(&dockerSocket, "docker-socket", "/run/berth/docker.sock", "the Docker API's unix socket (served unless --host names other listeners)")
	cmd.Flags().StringArrayVarP(&hosts, "host", "H", nil, "a Docker API listener: unix:///PATH or tcp://HOST:PORT (port 2376 by default; TCP needs --tlsverify, or --insecure-loopback on a loopback address); repeatable")
	cmd.Flags().BoolVar(&tlsOpts.Verify, "tlsverify", false, "serve TCP with TLS and require client certificates signed by --tlscacert")
	cmd.Flags().StringVar(&tlsOpts.CACert, "tlscacert", "", "the CA (PEM) that signs the clients' certificates")
	cmd.Flags().StringVar(&tlsOpts.Cert, "tlscert", "", "the server's certificate (PEM)")
	cmd.Flags().StringVar(&tlsOpts.Key, "tlskey", "", "the server's private key (PEM)")
	cmd.Flags().BoolVar(&tlsOpts.PlainLocal, "insecure-loopback", false, "allow plain TCP on a loopback address (any local user can then use the API: it is root-equivalent)")
	cmd.Flags().VarP(&level, "log-level", "l", "the lowest level logged: debug (each API call and its time), info, warn or error")
	cmd.Flags().StringVar(&criSocket, "cri-socket", "/run/berth/berth.sock", "the Kubernetes CRI's unix socket")
	cmd.Flags().StringVar(&podNet.Mode, "pod-network", "", `the network of the CRI's pods: "" (berth's default network), "cni" (the node's CNI configuration in --cni-conf-dir, as containerd and CRI-O use it: the network is not ready until a network add-on writes one), or a berth network's name`)
	cmd.Flags().StringVar(&podNet.ConfDir, "cni-conf-dir", podNet.ConfDir, "with --pod-network cni: the node's CNI configurations (the first file in lexical order of .conflist, .conf and .json that loads is the pod network; read at each pod's creation)")
	cmd.Flags().StringVar(&podNet.Template, "cni-conf-template", "", "with --pod-network cni: a Go template of a conflist that the kubelet's pod CIDR fills in (.PodCIDR, .PodCIDRRanges, .Routes) and that is written into --cni-conf-dir while it has no configuration (containerd's conf_template: a node without a network add-on)")
	cmd.Flags().StringSliceVar(&podNet.BinDirs, "cni-bin-dir", podNet.BinDirs, "with --pod-network cni: where the plugins of the node's CNI configuration are looked up, in order (repeatable or comma-separated)")
	cmd.Flags().BoolVar(&warmPodNetwork, "warm-pod-network", true, "keep one network namespace attached ahead of the next CRI pod, which then skips its CNI ADD: on berth's default network, or with --pod-network cni a configuration of the reference plugins only (bridge, host-local, loopback, portmap); once a pod was made, and its address is leased meanwhile")
	cmd.Flags().StringVar(&streamAddress, "stream-address", "127.0.0.1:0", "HOST:PORT of the CRI's streaming server (exec, attach, port-forward sessions; plain HTTP, port 0 picks a free one): keep it on loopback, where the kubelet reaches it")
	return cmd
}

// namedListener is a listener with what to undo when it closes.
type namedListener struct {
	net.Listener
	desc   string // for the log: unix:///path, tcp://addr (tls)
	socket string // a unix socket's path, removed at the end
}

// listenDocker opens every --host: unix sockets (mode 0660, group berth
// if there is one) and TCP as dockerapi.ListenTCP allows.
func listenDocker(hosts []string, o dockerapi.TLSOptions) ([]*namedListener, error) {
	var out []*namedListener
	fail := func(err error) ([]*namedListener, error) {
		for _, l := range out {
			l.Close()
			if l.socket != "" {
				os.Remove(l.socket)
			}
		}
		return nil, err
	}
	tcp := false
	for _, h := range hosts {
		network, addr, err := dockerapi.ParseHost(h)
		if err != nil {
			return fail(err)
		}
		if network == "unix" {
			l, err := listenUnix(addr)
			if err != nil {
				return fail(err)
			}
			out = append(out, &namedListener{Listener: l, desc: "unix://" + addr, socket: addr})
			continue
		}
		tcp = true
		l, err := dockerapi.ListenTCP(addr, o)
		if err != nil {
			return fail(err)
		}
		desc := "tcp://" + l.Addr().String()
		if o.Verify {
			desc += " (TLS, client certificates required)"
		} else {
			desc += " (plain, loopback)"
		}
		out = append(out, &namedListener{Listener: l, desc: desc})
	}
	if !tcp && (o.Verify || o.PlainLocal || o.CACert != "" || o.Cert != "" || o.Key != "") {
		return fail(errors.New("--tlsverify, --tlscacert, --tlscert, --tlskey and --insecure-loopback are for a tcp:// --host; none is given"))
	}
	return out, nil
}

// listenUnix makes the socket at path (mode 0660, group berth if there
// is one), refusing a path where another server answers.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	// A socket left by a killed serve: refuse one that answers.
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

// serveDocker serves the API on every listener until ctx ends, then
// removes the unix sockets.
func serveDocker(ctx context.Context, e *engine.Engine, listeners []*namedListener, log *slog.Logger) error {
	srv := &http.Server{Handler: dockerapi.New(e, Version, log, dockerViews()), ReadHeaderTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	errs := make(chan error, len(listeners))
	for _, l := range listeners {
		if l.socket != "" {
			defer os.Remove(l.socket)
		}
		log.Info("serving the Docker API", "on", l.desc, "api", dockerapi.APIVersion)
		go func() {
			err := srv.Serve(l)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errs <- err
		}()
	}
	var first error
	for range listeners {
		if err := <-errs; err != nil && first == nil {
			first = err
			// One listener failing ends them all: a server half up
			// would hide it.
			srv.Close()
		}
	}
	return first
}

// listenStreams opens the CRI's streaming server's TCP listener. A port
// off loopback is served as asked, with a warning: the sessions are plain
// HTTP, guarded only by their single-use tokens.
func listenStreams(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--stream-address %q: want HOST:PORT (127.0.0.1:0 picks a free loopback port): %w", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--stream-address %s: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		slog.Warn("the CRI's streaming server listens off loopback, in plain HTTP", "address", l.Addr().String())
	}
	return l, nil
}

// serveCRI serves the CRI's runtime and image services on l, and its
// streaming sessions on streams, until ctx ends, then stops gracefully
// (in-flight calls finish, 5 s at most; sessions are ended).
func serveCRI(ctx context.Context, e *engine.Engine, l, streams net.Listener, podNet cri.PodNetwork, log *slog.Logger) error {
	// The kubelet's pods and containers live in their own store
	// namespace, out of `berth ps` (images, networks, volumes shared).
	e, err := e.InNamespace(engine.CRINamespace)
	if err != nil {
		return err
	}
	s := cri.New(e, Version, log, podNet)
	// The streaming library logs through klog: into serve's log.
	klog.SetSlogLogger(log)
	ss, err := cri.NewStreamServer(e, streams, log)
	if err != nil {
		return err
	}
	s.ServeStreams(ss)
	g := grpc.NewServer(grpc.ChainUnaryInterceptor(s.UnaryLogger), grpc.MaxRecvMsgSize(16<<20))
	s.Register(g)
	log.Info("serving the CRI", "socket", l.Addr().String(), "api", "v1", "streams", ss.URL())
	errs := make(chan error, 2)
	go func() { errs <- ss.Serve() }()
	go func() {
		err := g.Serve(l)
		if errors.Is(err, grpc.ErrServerStopped) {
			err = nil
		}
		errs <- err
	}()
	// Until ctx ends or either fails (neither returns before a stop
	// but on failure); then both stop, the gRPC server first (no new
	// sessions), the sessions after.
	var first error
	pending := 2
	select {
	case <-ctx.Done():
	case first = <-errs:
		pending--
	}
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		g.Stop()
	}
	ss.Stop()
	for ; pending > 0; pending-- {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
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

// logLevel is serve's --log-level: slog's levels by dockerd's names.
type logLevel struct{ slog.Level }

func (l *logLevel) Set(v string) error {
	switch strings.ToLower(v) {
	case "debug":
		l.Level = slog.LevelDebug
	case "info":
		l.Level = slog.LevelInfo
	case "warn", "warning":
		l.Level = slog.LevelWarn
	case "error", "fatal":
		l.Level = slog.LevelError
	default:
		return fmt.Errorf("log level %q: want debug, info, warn or error", v)
	}
	return nil
}

func (l *logLevel) String() string { return strings.ToLower(l.Level.String()) }

func (l *logLevel) Type() string { return "level" }
