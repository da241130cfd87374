//go:build linux

package cgrouptest_test

import (
	"errors"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime/linux/cgroup"
	"github.com/berth-dev/berth/internal/runtime/linux/cgroup/cgrouptest"
)

// lifecycle drives a Manager the way the runtime does for create, pause,
// resume, update and delete.
func lifecycle(m cgroup.Manager, pid int) error {
	if err := m.Apply(pid); err != nil {
		return err
	}
	limit := int64(32 << 20)
	if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}); err != nil {
		return err
	}
	if err := m.Freeze(); err != nil {
		return err
	}
	if p, err := m.Paused(); err != nil || !p {
		return errors.New("not paused after Freeze")
	}
	if err := m.Thaw(); err != nil {
		return err
	}
	if p, err := m.Paused(); err != nil || p {
		return errors.New("paused after Thaw")
	}
	return m.Destroy()
}

func TestRecorderRecordsLifecycle(t *testing.T) {
	var f cgrouptest.Factory
	m, err := f.New(cgroup.Config{ID: "ctr1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := lifecycle(m, 4242); err != nil {
		t.Fatal(err)
	}
	r := f.Created()[0]
	want := []string{"Apply", "Set", "Freeze", "Paused", "Thaw", "Paused", "Destroy"}
	if got := r.Methods(); !reflect.DeepEqual(got, want) {
		t.Errorf("methods = %v, want %v", got, want)
	}
	if c := r.Calls()[0]; c.Pid != 4242 {
		t.Errorf("Apply pid = %d", c.Pid)
	}
	if lr := r.LastResources(); lr == nil || lr.Memory == nil || *lr.Memory.Limit != 32<<20 {
		t.Errorf("last resources = %+v", lr)
	}
	if !r.Destroyed() || r.Config.ID != "ctr1" {
		t.Errorf("destroyed=%v config=%+v", r.Destroyed(), r.Config)
	}
	if pids, _ := r.Pids(); len(pids) != 0 {
		t.Errorf("pids after Destroy = %v", pids)
	}
}

func TestRecorderCopiesSetArgument(t *testing.T) {
	r := &cgrouptest.Recorder{}
	limit := int64(8)
	res := &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}}
	if err := r.Set(res); err != nil {
		t.Fatal(err)
	}
	limit = 9 // the caller mutates its spec afterwards
	if got := *r.Calls()[0].Resources.Pids.Limit; got != 8 {
		t.Errorf("recorded pids limit = %d, want 8 (recorder must deep-copy)", got)
	}
}

func TestRecorderFailAndQueries(t *testing.T) {
	boom := errors.New("boom")
	r := &cgrouptest.Recorder{
		PathsValue: map[string]string{"memory": "/sys/fs/cgroup/memory/x"},
		StatsValue: &cgroup.Stats{Memory: cgroup.Memory{Usage: cgroup.MemoryEntry{Usage: 7}}},
		OOMKills:   2,
	}
	r.Fail(cgrouptest.MethodFreeze, boom)
	if err := r.Freeze(); !errors.Is(err, boom) {
		t.Errorf("Freeze err = %v", err)
	}
	if p, _ := r.Paused(); p {
		t.Error("a failed Freeze must not pause")
	}
	r.Fail(cgrouptest.MethodFreeze, nil)
	if err := r.Freeze(); err != nil {
		t.Errorf("Freeze after clearing = %v", err)
	}
	if c := r.Calls()[0]; c.Method != "Freeze" || !errors.Is(c.Err, boom) {
		t.Errorf("first call = %+v", c)
	}
	r.SetPids(1, 2)
	_ = r.Apply(2)
	_ = r.Apply(3)
	if pids, _ := r.Pids(); !reflect.DeepEqual(pids, []int{1, 2, 3}) {
		t.Errorf("pids = %v", pids)
	}
	st, _ := r.Stats()
	st.Memory.Usage.Usage = 99
	if st2, _ := r.Stats(); st2.Memory.Usage.Usage != 7 {
		t.Error("Stats must return a copy")
	}
	p := r.Paths()
	p["memory"] = "changed"
	if r.Paths()["memory"] != "/sys/fs/cgroup/memory/x" {
		t.Error("Paths must return a copy")
	}
	if n, _ := r.OOMKillCount(); n != 2 {
		t.Errorf("OOMKillCount = %d", n)
	}
	if r.Count(cgrouptest.MethodStats) != 2 || r.Count(cgrouptest.MethodApply) != 2 {
		t.Errorf("counts: %v", r.Methods())
	}
	r.Reset()
	if len(r.Calls()) != 0 {
		t.Error("Reset kept calls")
	}
}

func TestFactoryLoadAndErrors(t *testing.T) {
	f := &cgrouptest.Factory{}
	m, err := f.Load(map[string]string{"": "/sys/fs/cgroup/berth/x"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Paths()[""]; got != "/sys/fs/cgroup/berth/x" {
		t.Errorf("loaded paths = %v", m.Paths())
	}
	if len(f.Loaded()) != 1 {
		t.Error("Loaded not recorded")
	}
	f.NewErr = cgroup.ErrSystemdUnavailable
	if _, err := f.New(cgroup.Config{ID: "x", Systemd: true}); !errors.Is(err, cgroup.ErrSystemdUnavailable) {
		t.Errorf("New err = %v", err)
	}
}
