//go:build linux

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/events"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/lockfile"
	"github.com/berth-dev/berth/internal/privdir"
	"github.com/berth-dev/berth/internal/proc"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/snapshot"
)

// RootDirs and StateDirs are what berth makes in --root and --state:
// each is private (privdir.Ensure), and system reset removes them and
// nothing else.
var (
	RootDirs  = []string{"content", "snapshots", "images", "engine", "containers", "volumes", "networks", "events", "vm", "pods", "netdel", "netwarm"}
	StateDirs = []string{"containers", "runtime", "locks", "netns", "networks", "dns", "vm", "pods"}
)

// Options configures an Engine.
type Options struct {
	// Root is berth's persistent root (default /var/lib/berth), State its
	// run directory (default /run/berth).
	Root, State string
	// Images is the image service over the same root.
	Images *image.Service
	// Exe is the berth binary the monitor runs (default /proc/self/exe).
	Exe string
	// Driver runs the containers (the Linux one, made by the caller over
	// <State>/runtime: see RuntimeRoot). The engine never imports a
	// driver package.
	Driver runtime.Driver
	// Drivers are further isolations (the VM driver), which a container
	// asks for by name (--isolation); Driver is the default.
	Drivers []runtime.Driver
	// Reap: the caller is long-lived (berth serve), so the processes it
	// starts and lets go (monitors, the name server) are waited for in
	// the background rather than released, which would leave each a
	// zombie until the caller exits.
	Reap bool
	// SpareMonitor: the caller is long-lived and starts containers for
	// clients (berth serve): it keeps a container monitor parked ahead of
	// need, which a detached start takes (see spare.go).
	SpareMonitor bool
	// WarmPodNetwork: the caller is long-lived (Reap) and makes pods
	// (berth serve's CRI): it keeps a network namespace attached ahead of
	// the next pod (the default network, or a CNI configuration of the
	// reference plugins: see netwarm.go).
	WarmPodNetwork bool
	// Namespace is the store namespace the engine's names and lists are
	// in: "" is the CLI's and the Docker API's; the Kubernetes CRI keeps
	// its containers in their own, out of `berth ps`. Networks, volumes
	// and images are shared by all.
	Namespace string
}

// RuntimeRoot is where, under state, the Linux driver keeps its state.
func RuntimeRoot(state string) string { return filepath.Join(state, "runtime") }

// Engine manages containers. Every method may be called from any number
// of processes at once.
type Engine struct {
	opts      Options
	db        *store.DB
	images    *image.Service
	snapshots *snapshot.Store
	nets      *netsHolder     // shared by InNamespace's copies
	changes   *events.Watcher // Reap only: the journal grew
	unwatch   context.CancelFunc
	driver    *drivers
	events    *events.Journal
	spares    *spares     // SpareMonitor only; shared by InNamespace's copies
	netdel    *netdelRuns // Reap only: deferred DELs in progress (netdefer.go); shared
	warm      *warmNets   // WarmPodNetwork only: the spare pod network (netwarm.go); shared
}

// Open opens the engine's store under opts.Root.
func Open(opts Options) (*Engine, error) {
	if opts.Root == "" || opts.State == "" || opts.Images == nil || opts.Driver == nil {
		return nil, errors.New("engine: root, state, image service and driver are required")
	}
	if opts.Exe == "" {
		opts.Exe = "/proc/self/exe"
	}
	// Containers' mounted roots, writable layers, volumes and logs live
	// under these; no other user may reach them (see package privdir).
	for _, top := range []struct {
		dir  string
		subs []string
	}{{opts.Root, RootDirs}, {opts.State, StateDirs}} {
		if err := privdir.EnsureTop(top.dir); err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		for _, sub := range top.subs {
			if err := privdir.Ensure(filepath.Join(top.dir, sub)); err != nil {
				return nil, fmt.Errorf("engine: %w", err)
			}
		}
	}
	if err := ValidNamespace(opts.Namespace); err != nil {
		return nil, err
	}
	db, err := store.Open(filepath.Join(opts.Root, "engine", "berth.db"))
	if err != nil {
		return nil, err
	}
	e := &Engine{nets: &netsHolder{}, opts: opts, db: db.InNamespace(opts.Namespace), images: opts.Images, snapshots: opts.Images.Snapshots(), driver: newDrivers(opts.Driver, opts.Drivers), events: openJournal(opts.Root)}
	if opts.SpareMonitor {
		e.spares = newSpares(opts.Exe, opts.Root, opts.State)
	}
	if opts.Reap {
		e.netdel = &netdelRuns{}
		if opts.WarmPodNetwork {
			e.warm = &warmNets{}
		}
		// Long-lived: waits for what another process records (an exit,
		// a removal) wake at its event rather than at their next poll.
		ctx, cancel := context.WithCancel(context.Background())
		if w, err := e.events.Watch(ctx); err == nil {
			e.changes, e.unwatch = w, cancel
		} else {
			cancel()
		}
	}
	return e, nil
}

// Namespace is the store namespace the engine's names and lists are in.
func (e *Engine) Namespace() string { return e.opts.Namespace }

// Root is the engine's persistent root directory.
func (e *Engine) Root() string { return e.opts.Root }

// Close releases the store.
func (e *Engine) Close() error {
	e.spares.close()
	e.closeWarm(context.Background())
	if e.netdel != nil {
		// What is cut short stays journaled for the next start.
		e.netdel.wait(10 * time.Second)
	}
	if e.unwatch != nil {
		e.unwatch()
	}
	if m := e.nets.opened(); m != nil {
		m.Wait()
	}
	return e.db.Close()
}

// InUse reports the containers made from an image (for rmi).
func (e *Engine) InUse(ctx context.Context, imageID string) ([]string, error) {
	return e.db.UsingImage(ctx, imageID)
}

func (e *Engine) containerDir(id string) string { return filepath.Join(e.opts.Root, "containers", id) }
func (e *Engine) stateDir(id string) string     { return filepath.Join(e.opts.State, "containers", id) }
func (e *Engine) rootfs(id string) string       { return filepath.Join(e.stateDir(id), "rootfs") }
func (e *Engine) exitFile(id string) string     { return filepath.Join(e.stateDir(id), "exit") }

// Paths are where a container's files are (inspect shows them).
type Paths struct {
	Dir    string // hosts, hostname, resolv.conf, the log
	Rootfs string // the overlay mount
	Upper  string // the writable layer's upper and work directories
	Work   string
}

// ContainerSizes are docker's SizeRw (the bytes of c's writable layer)
// and SizeRootFs (those and its image's).
func (e *Engine) ContainerSizes(ctx context.Context, c *Container) (rw, rootfs int64) {
	rw = DirSize(e.ContainerPaths(c.ID).Upper)
	rootfs = rw
	if recs, err := e.Images().Get(ctx, c.Image); err == nil && len(recs) > 0 {
		rootfs += e.Images().Size(recs[0])
	}
	return rw, rootfs
}

// ContainerPaths are the container id's Paths.
func (e *Engine) ContainerPaths(id string) Paths {
	p := Paths{Dir: e.containerDir(id), Rootfs: e.rootfs(id)}
	if dir, err := e.snapshots.ActiveDir(id); err == nil {
		p.Upper, p.Work = filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	}
	return p
}

// lock takes the container's lock (exclusive).
func (e *Engine) lock(ctx context.Context, id string) (func(), error) {
	dir := filepath.Join(e.opts.State, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return lockfile.Lock(ctx, filepath.Join(dir, id), true)
}

func decode(r store.Row) (*Container, error) {
	var c Container
	if err := json.Unmarshal(r.Data, &c); err != nil {
		return nil, fmt.Errorf("engine: record of container %s is corrupt: %w", r.ID, err)
	}
	c.ID, c.Name, c.Namespace = r.ID, r.Name, r.Namespace
	return &c, nil
}

func encode(c *Container) ([]byte, error) { return json.Marshal(c) }

// update changes a record in one transaction.
func (e *Engine) update(ctx context.Context, id string, fn func(c *Container) error) (*Container, error) {
	var out *Container
	err := e.db.Update(ctx, id, func(r *store.Row) error {
		c, err := decode(*r)
		if err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
		data, err := encode(c)
		if err != nil {
			return err
		}
		r.Name, r.Data = c.Name, data
		out = c
		return nil
	})
	return out, err
}

// get resolves a name, ID or ID prefix to the stored record, unrefreshed:
// names and prefixes in the engine's namespace, a full ID in any (the
// monitors' children and the exit handler name their container so).
func (e *Engine) get(ctx context.Context, ref string) (*Container, error) {
	if len(ref) == 64 && isHexID(ref) {
		if r, err := e.db.Get(ctx, ref); err == nil {
			return decode(r)
		}
	}
	r, err := e.db.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	return decode(r)
}

// procStart is the runtime's start time of a process (0: gone).
func procStart(pid int) uint64 { return proc.StartTime(pid) }

// alive reports whether pid is still the process that started at start.
func alive(pid int, start uint64) bool {
	return pid > 0 && start != 0 && procStart(pid) == start
}

func isHexID(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidNamespace checks a store namespace's name: "" or lower-case
// letters, digits, '.' and '-', starting with a letter or digit (at most
// 63), as containerd's.
func ValidNamespace(ns string) error {
	if ns == "" {
		return nil
	}
	ok := len(ns) <= 63
	for i := 0; ok && i < len(ns); i++ {
		c := ns[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && (c == '.' || c == '-')
	}
	if !ok {
		return fmt.Errorf("namespace %q: lower-case letters, digits, '.' and '-', starting with a letter or digit, at most 63: %w", ns, ErrInvalid)
	}
	return nil
}

// CRINamespace is the store namespace of the Kubernetes CRI's pods and
// containers (containerd's k8s.io): out of `berth ps` and `berth pod ls`
// unless asked for (--namespace k8s).
const CRINamespace = "k8s"

// InNamespace is an engine over the same root, store and drivers whose
// names and lists are in namespace ns.
func (e *Engine) InNamespace(ns string) (*Engine, error) {
	if err := ValidNamespace(ns); err != nil {
		return nil, err
	}
	c := *e
	c.opts.Namespace = ns
	c.db = e.db.InNamespace(ns)
	return &c, nil
}
