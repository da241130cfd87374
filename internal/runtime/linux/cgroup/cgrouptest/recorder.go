//go:build linux

// Package cgrouptest provides a recording fake of cgroup.Manager for unit
// tests of code that drives cgroups, and a Factory whose New/Load match
// cgroup.New/cgroup.Load and hand out Recorders.
//
// A Recorder never touches the host. It keeps a simple model so that call
// sequences behave plausibly: Freeze/Thaw drive Paused, Apply adds the pid to
// Pids, Destroy empties Pids and marks the recorder destroyed. Any method can
// be made to fail with Fail.
package cgrouptest

import (
	"encoding/json"
	"maps"
	"slices"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime/linux/cgroup"
)

// Method names, as recorded in Call.Method and accepted by Fail.
const (
	MethodApply        = "Apply"
	MethodSet          = "Set"
	MethodFreeze       = "Freeze"
	MethodThaw         = "Thaw"
	MethodPaused       = "Paused"
	MethodPids         = "Pids"
	MethodStats        = "Stats"
	MethodDestroy      = "Destroy"
	MethodPaths        = "Paths"
	MethodOOMKillCount = "OOMKillCount"
)

// Call is one recorded method call.
type Call struct {
	Method string
	// Pid is the argument of Apply.
	Pid int
	// Resources is a deep copy of Set's argument (nil for Set(nil)).
	Resources *specs.LinuxResources
	// Err is what the call returned.
	Err error
}

// Recorder is a cgroup.Manager that records its calls. The zero value is
// ready to use; set the exported fields before handing it out to control
// what the query methods return. It is safe for concurrent use.
type Recorder struct {
	// Config is the configuration the Recorder was created with (set by
	// Factory.New).
	Config cgroup.Config
	// PathsValue is returned (copied) by Paths; nil gives {"": "/berth-test/<id>"}.
	PathsValue map[string]string
	// StatsValue is returned (copied) by Stats; nil gives an empty Stats.
	StatsValue *cgroup.Stats
	// OOMKills is returned by OOMKillCount.
	OOMKills uint64

	mu        sync.Mutex
	calls     []Call
	fail      map[string]error
	pids      []int
	frozen    bool
	destroyed bool
	last      *specs.LinuxResources
}

var _ cgroup.Manager = (*Recorder)(nil)

// Fail makes every later call of method return err (nil clears it).
func (r *Recorder) Fail(method string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail == nil {
		r.fail = map[string]error{}
	}
	if err == nil {
		delete(r.fail, method)
		return
	}
	r.fail[method] = err
}

// SetPids replaces the pids the Recorder reports.
func (r *Recorder) SetPids(pids ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pids = slices.Clone(pids)
}

// Calls returns a copy of the recorded calls, oldest first.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// Methods returns the recorded method names, oldest first.
func (r *Recorder) Methods() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.calls))
	for i, c := range r.calls {
		out[i] = c.Method
	}
	return out
}

// Count returns how many times method was called.
func (r *Recorder) Count(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if c.Method == method {
			n++
		}
	}
	return n
}

// LastResources returns a copy of the resources of the last successful Set
// (nil if none).
func (r *Recorder) LastResources() *specs.LinuxResources {
	r.mu.Lock()
	defer r.mu.Unlock()
	return copyResources(r.last)
}

// Destroyed reports whether Destroy succeeded at least once.
func (r *Recorder) Destroyed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.destroyed
}

// Reset forgets the recorded calls (configured failures and state remain).
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
}

// record appends a call and returns the configured failure for it. Callers
// hold r.mu.
func (r *Recorder) record(c Call) error {
	c.Err = r.fail[c.Method]
	r.calls = append(r.calls, c)
	return c.Err
}

func (r *Recorder) Apply(pid int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Method: MethodApply, Pid: pid}); err != nil {
		return err
	}
	if pid > 0 && !slices.Contains(r.pids, pid) {
		r.pids = append(r.pids, pid)
	}
	return nil
}

func (r *Recorder) Set(res *specs.LinuxResources) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cp := copyResources(res)
	if err := r.record(Call{Method: MethodSet, Resources: cp}); err != nil {
		return err
	}
	r.last = copyResources(res)
	return nil
}

func (r *Recorder) Freeze() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Method: MethodFreeze}); err != nil {
		return err
	}
	r.frozen = true
	return nil
}

func (r *Recorder) Thaw() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Method: MethodThaw}); err != nil {
		return err
	}
	r.frozen = false
	return nil
}

func (r *Recorder) Paused() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Method: MethodPaused}); err != nil {
		return false, err
	}
	return r.frozen, nil
}

func (r *Recorder) Pids() ([]int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Method: MethodPids}); err != nil {
		return nil, err
	}
	return slices.Clone(r.pids), nil
}

func (r *Recorder) Stats() (*cgroup.Stats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Method: MethodStats}); err != nil {
		return nil, err
	}
	if r.StatsValue == nil {
		return &cgroup.Stats{Hugetlb: map[string]cgroup.Hugetlb{}}, nil
	}
	var out cgroup.Stats
	b, err := json.Marshal(r.StatsValue)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		panic("cgrouptest: cannot copy Stats: " + err.Error())
	}
	return &out, nil
}

func (r *Recorder) Destroy() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Method: MethodDestroy}); err != nil {
		return err
	}
	r.destroyed = true
	r.pids = nil
	r.frozen = false
	return nil
}

func (r *Recorder) Paths() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.record(Call{Method: MethodPaths})
	if r.PathsValue == nil {
		id := r.Config.ID
		if id == "" {
			id = "unknown"
		}
		return map[string]string{"": "/berth-test/" + id}
	}
	return maps.Clone(r.PathsValue)
}

func (r *Recorder) OOMKillCount() (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Method: MethodOOMKillCount}); err != nil {
		return 0, err
	}
	return r.OOMKills, nil
}

func copyResources(res *specs.LinuxResources) *specs.LinuxResources {
	if res == nil {
		return nil
	}
	var out specs.LinuxResources
	b, err := json.Marshal(res)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		panic("cgrouptest: cannot copy LinuxResources: " + err.Error())
	}
	return &out
}

// Factory hands out Recorders from New and Load, with the same signatures
// as cgroup.New and cgroup.Load, and remembers them.
type Factory struct {
	// NewErr / LoadErr, when set, are returned by New / Load.
	NewErr  error
	LoadErr error

	mu      sync.Mutex
	created []*Recorder
	loaded  []*Recorder
}

// New records cfg and returns a fresh Recorder whose Config is cfg.
func (f *Factory) New(cfg cgroup.Config) (cgroup.Manager, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.NewErr != nil {
		return nil, f.NewErr
	}
	r := &Recorder{Config: cfg}
	f.created = append(f.created, r)
	return r, nil
}

// Load returns a fresh Recorder whose Paths are paths.
func (f *Factory) Load(paths map[string]string, systemd bool) (cgroup.Manager, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.LoadErr != nil {
		return nil, f.LoadErr
	}
	r := &Recorder{PathsValue: maps.Clone(paths), Config: cgroup.Config{Systemd: systemd}}
	f.loaded = append(f.loaded, r)
	return r, nil
}

// Created returns the Recorders New returned, oldest first.
func (f *Factory) Created() []*Recorder {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.created)
}

// Loaded returns the Recorders Load returned, oldest first.
func (f *Factory) Loaded() []*Recorder {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.loaded)
}
