//go:build linux

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/log"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/network/netns"
	"github.com/berth-dev/berth/internal/trace"
)

// Warm pod networks. A long-lived engine (berth serve,
// Options.WarmPodNetwork) keeps one network namespace attached ahead of
// the next pod, under the ID that pod will have: on berth's default
// network, or on a CNI configuration file's (the CRI's --pod-network cni)
// whose plugins are all reference plugins that read nothing of the pod
// (network.WarmCNIKey: bridge, host-local, loopback, portmap; a network
// add-on's plugins key what they make to the pod's name, and are never
// made ahead). A pod with nothing of its own asked of the attachment (no
// address, MAC, alias or published port, no user namespace, the default
// isolation) takes the spare if it was made for the same attachment (for
// a file, the same content), and its creation skips the CNI ADD: the
// plugins' process starts, ~35-45 ms here on the default network and
// ~110 ms on a conflist with ipMasq, most of a RunPodSandbox. The spare's
// ADD had no CNI_ARGS: the pod's (K8S_POD_NAME...) are not in libcni's
// cache of it, which its plugins never read. The next spare is made in
// the background as one is taken, for the attachment of the last pod that
// could have taken one (a spare made for another is released). The first
// is made after the first such pod, so an engine that makes none holds
// none.
//
// What a spare holds meanwhile is what its ADD made: the namespace pinned
// at <state>/netns/<id>, a veth on the default bridge and an address
// leased from the default network's pool. Its ID is fresh and random, so
// nothing else names it until its pod does.
//
// Durability: before its ADD, a spare is journaled at
// <root>/netwarm/<id>.json, in the deferred DELs' format (netdefer.go: the
// DEL that undoes it), and the engine that holds it keeps the file open
// and flocked. Taken, the journal is removed once the pod's record (the
// same ID) is written: from then on the pod's own undo (unpinPod, and
// abandoned for a creation cut short) owns the namespace. A closed engine
// releases its spare. A killed one leaves the journal unlocked: serve's
// next start (SweepDeferredDels) or a reset unpins the namespace and runs
// the DEL. A journal whose flock is held is a live engine's spare, and is
// left alone. One unlocked with a pod of its ID recorded was taken: the
// pod's record owns the namespace, and the journal just goes. If that
// pod's creation was cut short (its engine killed before it removed the
// journal), the sweep undoes it then (abandoned), as its next reader
// would. (The removal is not synced: a journal a host's crash brings back
// names a recorded pod, and goes so.)
//
// Lock order: the journal's flock is held with no other lock around it
// (it is taken when the file is made, before the ADD, and only tried
// elsewhere); warmNets.mu is never held across any other lock or I/O.

// warmRetry is how long after a failed spare the engine tries again (a
// broken default network must not cost a failing ADD per pod).
const warmRetry = 10 * time.Second

// warmDelay is how long after one is taken the next spare is made: made
// at once, its ADD's plugins took the CPU (and the kernel's locks) from
// the start of the pod's containers, which follows its creation; this
// covers the kubelet's usual way from RunPodSandbox to StartContainer
// here. A variable for tests.
var warmDelay = 150 * time.Millisecond

const warmNice = 10

// warmNet is a spare: a namespace attached to a network.
type warmNet struct {
	id      string
	key     string // what it was made for (warmKey)
	eps     []network.Endpoint
	journal *os.File // <root>/netwarm/<id>.json, flocked while held
}

// warmNets holds an engine's spare; nil (none kept) is valid.
type warmNets struct {
	mu     sync.Mutex
	ready  *warmNet
	making bool
	closed bool
	// want is the attachment the next spare is made for: the last pod's
	// that might have taken one.
	want     NetworkRequest
	wantKey  string
	failedAt time.Time
}

func (e *Engine) netwarmDir() string { return filepath.Join(e.opts.Root, "netwarm") }

func (e *Engine) netwarmFile(id string) string {
	return filepath.Join(e.netwarmDir(), id+".json")
}

// warmEndpoints are what a spare's ADD for req attaches, and so what its
// DEL releases.
func warmEndpoints(req NetworkRequest) []network.Endpoint {
	name := req.Name
	if req.CNI == nil {
		name = network.Canonical(name)
	}
	return []network.Endpoint{{Network: name, IfName: "eth0", CNI: req.CNI}}
}

// warmable says whether pod p's attachment could be made ahead of it:
// one, to the default network or to a CNI configuration file's, with
// nothing of its own asked of it (no address, MAC, alias or published
// port), no user namespace, the default isolation.
func warmable(p *Pod) bool {
	if len(p.Networks) != 1 || len(p.PortBindings) > 0 || p.IDMap != nil || p.Isolation != "" {
		return false
	}
	r := p.Networks[0]
	if r.IP != "" || r.MAC != "" || len(r.Aliases) > 0 {
		return false
	}
	switch p.NetworkMode {
	case "bridge":
		return r.CNI == nil && network.Canonical(r.Name) == network.DefaultName
	case "cni":
		return r.CNI != nil
	}
	return false
}

// warmKey names the attachment a warmable pod p asks for, and gives the
// request a spare for it is made with (a CNI configuration's without the
// pod's own CNI_ARGS, which its plugins do not read; its key is the one
// its chooser gave, network.WarmCNIKey, none when it may not be made
// ahead); ok false when it cannot be made ahead.
func warmKey(p *Pod) (key string, req NetworkRequest, ok bool) {
	if !warmable(p) {
		return "", NetworkRequest{}, false
	}
	r := p.Networks[0]
	if r.CNI == nil {
		return "default", NetworkRequest{Name: network.DefaultName}, true
	}
	ref := &network.CNIRef{File: r.CNI.File, Name: r.CNI.Name, BinDirs: r.CNI.BinDirs}
	return r.CNI.WarmKey, NetworkRequest{Name: r.Name, CNI: ref}, r.CNI.WarmKey != ""
}

// takeWarm returns the spare for pod p if p may take one and one made
// for its attachment is ready (nil otherwise), and has the next one made.
func (e *Engine) takeWarm(ctx context.Context, p *Pod) *warmNet {
	wn := e.warm
	if wn == nil {
		return nil
	}
	key, req, ok := warmKey(p)
	if !ok {
		return nil
	}
	wn.mu.Lock()
	w, stale := wn.ready, (*warmNet)(nil)
	wn.ready = nil
	if w != nil && w.key != key {
		// Made for another attachment (a CNI configuration since
		// rewritten): released, and the next made for this one.
		stale, w = w, nil
	}
	wn.want, wn.wantKey = req, key
	wn.mu.Unlock()
	if stale != nil {
		e.netdel.Go(func() { e.releaseWarm(context.WithoutCancel(ctx), stale) })
	}
	if w != nil {
		if ok, _ := netns.IsPinned(e.netnsPath(w.id)); !ok {
			// Unpinned under us (a reset while serve ran): not a
			// namespace to give a pod.
			e.releaseWarm(context.WithoutCancel(ctx), w)
			w = nil
		}
	}
	e.refillWarm(ctx)
	return w
}

// WarmPodNetwork is the spare ready for the next pod now, if any: the
// ID that pod will have and its address (the CRI's verbose Status shows
// it).
func (e *Engine) WarmPodNetwork() (id, ip string, ok bool) {
	wn := e.warm
	if wn == nil {
		return "", "", false
	}
	wn.mu.Lock()
	defer wn.mu.Unlock()
	if w := wn.ready; w != nil {
		for _, ep := range w.eps {
			ip = ep.IP
		}
		return w.id, ip, true
	}
	return "", "", false
}

// putBackWarm returns a spare whose pod was not made (its record could
// not be written); nil-safe.
func (e *Engine) putBackWarm(ctx context.Context, w *warmNet) {
	if w == nil {
		return
	}
	wn := e.warm
	wn.mu.Lock()
	if wn.ready == nil && !wn.closed {
		wn.ready, w = w, nil
	}
	wn.mu.Unlock()
	if w != nil {
		// (Off the request's context: a kubelet's timeout is when a
		// pod's record fails to be written.)
		e.releaseWarm(context.WithoutCancel(ctx), w)
	}
}

// adoptWarm hands spare w to its pod, whose record is written: the
// journal goes, and with it the engine's claim.
func (e *Engine) adoptWarm(w *warmNet) error {
	defer w.journal.Close()
	if err := os.Remove(e.netwarmFile(w.id)); err != nil {
		return fmt.Errorf("the journal of its warm network namespace: %w", err)
	}
	trace.Phase("pod-network-warm")
	return nil
}

// refillWarm makes a spare in the background unless one is ready or
// being made.
func (e *Engine) refillWarm(ctx context.Context) {
	wn := e.warm
	wn.mu.Lock()
	if wn.ready != nil || wn.making || wn.closed || time.Since(wn.failedAt) < warmRetry {
		wn.mu.Unlock()
		return
	}
	wn.making = true
	wn.mu.Unlock()
	ctx = context.WithoutCancel(ctx)
	e.netdel.Go(func() {
		// At a low CPU priority, this thread and the plugin processes
		// forked from it: the spare must not take the CPU from the
		// pod starts beside it. Not the lowest: its plugins take
		// locks a pod's own ADD or DEL waits for (host-local's lease
		// directory, the kernel's rtnl), which on a saturated CPU a
		// nice-19 holder would keep for long. (The thread is not
		// unlocked, so it ends with this goroutine rather than serve
		// others.)
		goruntime.LockOSThread()
		unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), warmNice)
		time.Sleep(warmDelay)
		wn.mu.Lock()
		if wn.closed || wn.ready != nil {
			// Closed meanwhile, or a spare given back (its pod's
			// record failed): none needed.
			wn.making = false
			wn.mu.Unlock()
			return
		}
		req, key := wn.want, wn.wantKey
		wn.mu.Unlock()
		ctx, cancel := context.WithTimeout(ctx, delTimeout)
		defer cancel()
		w, err := e.makeWarm(ctx, req, key)
		wn.mu.Lock()
		wn.making = false
		if err != nil {
			wn.failedAt = time.Now()
		} else if !wn.closed && wn.ready == nil {
			wn.ready, w = w, nil
		}
		wn.mu.Unlock()
		if err != nil {
			log.From(ctx).Warn("making a warm network namespace for the next pod", "err", err)
		}
		if w != nil {
			e.releaseWarm(ctx, w)
		}
	})
}

// makeWarm journals a new spare for req (named key) and attaches it.
func (e *Engine) makeWarm(ctx context.Context, req NetworkRequest, key string) (*warmNet, error) {
	id := newID()
	intended := warmEndpoints(req)
	data, err := json.Marshal(deferredDel{Container: id, Endpoints: intended})
	if err != nil {
		return nil, err
	}
	f, err := writeFileAtomicLocked(e.netwarmFile(id), data)
	if err != nil {
		return nil, fmt.Errorf("journal a warm network namespace: %w", err)
	}
	w := &warmNet{id: id, key: key, eps: intended, journal: f}
	stopAtForTest("netwarm-journaled")
	eps, err := e.plumbNetns(ctx, id, []NetworkRequest{req}, nil, nil, func(error) {})
	if err != nil {
		// plumbNetns undid what it made; the DEL runs again (a DEL of
		// what is gone is no error) so that the journal may go.
		e.releaseWarm(ctx, w)
		return nil, err
	}
	w.eps = eps
	return w, nil
}

// releaseWarm undoes spare w: the namespace unpinned, its DEL run, and
// the journal removed once the DEL succeeded (else it stays for the next
// sweep).
func (e *Engine) releaseWarm(ctx context.Context, w *warmNet) {
	defer w.journal.Close()
	failed, err := e.releaseNetns(ctx, w.id, w.eps)
	if len(failed) == 0 {
		err = errors.Join(err, removeIfExists(e.netwarmFile(w.id)))
	}
	if err != nil {
		log.From(ctx).Warn("releasing a warm network namespace; serve's next start retries", "id", w.id, "err", err)
	}
}

// closeWarm releases the spare of an engine that closes; one being made
// is released by its maker (Close waits for it with the deferred DELs).
func (e *Engine) closeWarm(ctx context.Context) {
	wn := e.warm
	if wn == nil {
		return
	}
	wn.mu.Lock()
	wn.closed = true
	w := wn.ready
	wn.ready = nil
	wn.mu.Unlock()
	if w != nil {
		e.releaseWarm(ctx, w)
	}
}

// sweepWarm releases the spares of engines that are gone: every journal
// under <root>/netwarm whose flock is free.
func (e *Engine) sweepWarm(ctx context.Context) error {
	journals, temps, err := journalsIn(e.netwarmDir())
	if err != nil {
		return err
	}
	for _, tmp := range temps {
		// A write cut short, unless its writer holds it.
		if f, err := tryLockFile(tmp); err == nil && f != nil {
			os.Remove(tmp)
			f.Close()
		}
	}
	var errs []error
	for _, path := range journals {
		errs = append(errs, e.sweepWarmOne(ctx, path))
	}
	return errors.Join(errs...)
}

// sweepWarmOne releases the spare journaled at path if no engine holds it.
func (e *Engine) sweepWarmOne(ctx context.Context, path string) error {
	f, err := tryLockFile(path)
	if f == nil || err != nil {
		return err // gone, or held by a live engine (nil error)
	}
	defer f.Close()
	d, err := readJournal(f, "warm network namespace journal")
	if err != nil {
		return err
	}
	if row, err := e.podsDB().Get(ctx, d.Container); err == nil {
		// Taken: the pod's record owns the namespace. A creation cut
		// short (its creator gone before the journal was removed) is
		// undone now, as when next read; a pod made is left alone (a
		// journal whose removal a host's crash undid).
		if p, err := decodePod(row); err == nil {
			e.abandoned(ctx, p)
		}
		return removeIfExists(path)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	// As a pod's: a CNI configuration's DEL runs in the namespace, which
	// is kept while it fails; berth's own after the unpin.
	if failed, err := e.releaseNetns(ctx, d.Container, d.Endpoints); len(failed) > 0 {
		return fmt.Errorf("warm network namespace %s: %w", ShortID(d.Container), err)
	}
	return removeIfExists(path)
}

// tryLockFile opens path and tries its flock: nil, nil when the file is
// gone (or no longer at path) or another process holds it.
func tryLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	var st, cur unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Nlink == 0 || unix.Stat(path, &cur) != nil || cur.Ino != st.Ino {
		f.Close() // removed or replaced meanwhile: not this file's
		return nil, nil
	}
	return f, nil
}
