// Package runtime is the seam between the engine and the isolation
// drivers: Linux namespaces (internal/runtime/linux), and later a microVM
// or a FreeBSD jail. It speaks of containers, processes, stdio, signals,
// exit statuses, statistics and pause, never of host pids beyond one to
// show, cgroup paths or mount namespaces, which only a driver knows.
//
// A driver keeps its own state under a root the caller gives it; the
// engine keeps its records and calls a driver only to make, run, signal,
// inspect and remove a container's process. Every method may be called
// from any number of processes at once; a driver serialises what it must.
package runtime

import (
	"context"
	"errors"
	"io"
	"os"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Errors a driver wraps, for errors.Is.
var (
	// ErrNotExist: the driver has no such container.
	ErrNotExist = errors.New("container does not exist")
	// ErrInvalidStatus: the operation does not apply to the container as
	// it is (exec in a stopped one, resume of one not paused).
	ErrInvalidStatus = errors.New("invalid container status")
	// ErrInvalidArgument: an option the driver (or the tool it runs)
	// refuses, such as Top's ps options.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotSupported: the driver cannot do this (a container whose files
	// are not on this host's file system, say).
	ErrNotSupported = errors.New("not supported by this isolation driver")
)

// Status is a container's state in its driver: the runtime spec's, plus
// paused.
type Status string

const (
	StatusCreating Status = "creating"
	StatusCreated  Status = "created"
	StatusRunning  Status = "running"
	StatusPaused   Status = "paused"
	StatusStopped  Status = "stopped"
)

// Stdio is the standard input, output and error a container's or exec'd
// process gets (without a terminal).
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
}

// CreateOptions say how to make a container.
type CreateOptions struct {
	// Bundle is an OCI bundle directory: config.json and the root
	// filesystem it names.
	Bundle string
	// Stdio is the process's, when config.json asks for no terminal.
	Stdio Stdio
	// Terminal is config.json's process.terminal (the caller made the
	// bundle): the container's pty master is then Container.Console.
	Terminal bool
	// Layers are the image's layers, lowest first, as read-only
	// directories the bundle's root file system stacks. A driver that
	// runs the container on this host uses the bundle's root and ignores
	// them; one that cannot (a VM) makes its own images of them.
	Layers []Layer
	// HelperUser, when set, is a host user and group of this
	// container's alone that the driver runs its own processes on the
	// host as (a VM's QEMU) instead of root. A driver without such
	// processes ignores it.
	HelperUser *HostUser
	// FilesOnly makes the container only to reach its files (cp and
	// export of a stopped container whose files are not on this host's
	// file system): without its network, terminal or input, and its
	// process is never started; the caller deletes it when done. A
	// driver whose containers' files are on the host ignores it.
	FilesOnly bool
	// Sandbox, when set, is the ID of a sandbox (a pod) this driver
	// made with SandboxDriver.CreateSandbox, which the container runs
	// in (a pod's VM holds all its containers). A driver without
	// sandboxes refuses it.
	Sandbox string
}

// SandboxDriver is implemented by a driver whose pods are a unit of
// their own that must exist before their containers (a VM holding a
// pod's containers): the engine makes it when the pod is made and
// removes it with the pod. A driver whose pods are only shared
// namespaces (linux) does not implement it.
type SandboxDriver interface {
	// CreateSandbox makes the pod's sandbox; on failure nothing is
	// left.
	CreateSandbox(ctx context.Context, id string, o SandboxOptions) error
	// SandboxReady reports whether the sandbox runs.
	SandboxReady(ctx context.Context, id string) bool
	// DeleteSandbox ends the sandbox and every container still in it; a
	// sandbox the driver does not know is no error.
	DeleteSandbox(ctx context.Context, id string) error
}

// SandboxOptions say how to make a sandbox.
type SandboxOptions struct {
	// Netns is the pod's network namespace (its CNI attachments made),
	// which the sandbox joins; empty for none.
	Netns string
	// Hostname is the pod's host name.
	Hostname string
	// ResolvConf is the pod's /etc/resolv.conf (a loopback name server
	// there is answered in Netns).
	ResolvConf []byte
	// Resources size the sandbox (nil: the driver's default).
	Resources *specs.LinuxResources
	// CgroupsPath is the pod's cgroup on the host, which bounds what
	// the sandbox's host processes take ("" for the driver's default).
	CgroupsPath string
	// HelperUser is as in CreateOptions.
	HelperUser *HostUser
	// SharePID: the pod's containers share one PID namespace.
	SharePID bool
	// ShmSize is the size of the pod's /dev/shm in bytes (0: 64 MiB).
	ShmSize int64
}

// HostUser is a numeric user and group of the host.
type HostUser struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// Layer is one unpacked image layer.
type Layer struct {
	// Digest names the layer's content (its diffID): equal digests are
	// equal directories, so what a driver derives from one is shared.
	Digest string
	// Dir holds the layer's files, whiteouts in overlayfs form.
	Dir string
}

// ExecOptions say how to start a process in a running container.
type ExecOptions struct {
	// Process is the OCI process to run (Terminal asks for a pty, whose
	// master Process.Console then returns).
	Process *specs.Process
	// Stdio is the process's without a terminal.
	Stdio Stdio
}

// Driver makes and finds containers of one isolation.
type Driver interface {
	// Name is the isolation the driver provides: "linux", "vm", "jail".
	Name() string
	// Create makes a container from a bundle and leaves its process
	// waiting for Start. On failure nothing is left.
	Create(ctx context.Context, id string, o CreateOptions) (Container, error)
	// Load finds a container the driver made (ErrNotExist if none).
	Load(ctx context.Context, id string) (Container, error)
	// Delete removes a container, killing what still runs, and whatever
	// a create that never finished left of it; a container the driver
	// does not know is no error.
	Delete(ctx context.Context, id string) error
}

// Container is a driver's handle on one container.
type Container interface {
	ID() string
	// Status is the container's state now.
	Status() Status
	// Pid is a host process that stands for the container (its init
	// process, or the process of the VM holding it), to show as docker's
	// State.Pid; 0 when there is none.
	Pid() int
	// Process is the process the container was created with (exec starts
	// from it).
	Process() *specs.Process
	// Console is the pty master of a container created with a terminal
	// (the caller owns it); nil otherwise.
	Console() *os.File
	// Start runs the created container's process.
	Start(ctx context.Context) error
	// Signal sends sig to the container's process, or with all to every
	// process in it.
	Signal(sig syscall.Signal, all bool) error
	Pause() error
	Resume() error
	// Update changes the running container's resource limits.
	Update(ctx context.Context, r *specs.LinuxResources) error
	// Exec starts a process in the running container.
	Exec(ctx context.Context, o ExecOptions) (Process, error)
	// Stats samples the container's resource use.
	Stats(ctx context.Context) (*Stats, error)
	// Top lists the container's processes as ps(1) would with psArgs:
	// the column titles and one row per process (the last column holds
	// the rest of the line).
	Top(ctx context.Context, psArgs []string) ([]string, [][]string, error)
	// OpenRoot opens the container's root directory as its processes see
	// it (volumes and binds included), for cp and exec's user lookup;
	// ErrNotSupported from a driver whose containers' files are not on
	// this host's file system.
	OpenRoot() (*os.File, error)
}

// GuestFiles is implemented by a Container whose files are not on this
// host's file system (a VM's: OpenRoot answers ErrNotSupported): cp and
// export run their container half inside, as the berth binary's file
// helper (engine.GuestFilesMain) with args, the root it works on put
// after the first (the container's root as its processes see it; its
// root file system alone for "export"). It returns the helper's exit
// code and what it wrote on stderr; err is a failure to run it.
type GuestFiles interface {
	GuestFiles(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) (code int, stderr string, err error)
}

// Process is a process started by Exec.
type Process interface {
	// Pid is the host process standing for it, to show; 0 if none.
	Pid() int
	// Console is its pty master when it asked for a terminal (the caller
	// owns it).
	Console() *os.File
	// Wait waits for it and returns its exit code as a shell reports it
	// (128+n for signal n).
	Wait() (int, error)
	// Signal sends it sig (SIGKILL for a caller past its time, one a
	// caller relays): never by Pid, which may be 0.
	Signal(sig syscall.Signal) error
}

// Stats is one sample of a container's resource use.
type Stats struct {
	// CPUTotal is the CPU time its processes used, in nanoseconds.
	CPUTotal uint64
	// MemUsage excludes the inactive page cache (as docker's CLI shows
	// it); MemLimit is its limit, at most the host's memory.
	MemUsage, MemLimit uint64
	// Pids is the number of its processes.
	Pids uint64
	// Network bytes in and out of its interfaces, loopback excluded.
	NetRx, NetTx uint64
	// Block device bytes read and written.
	BlockRead, BlockWrite uint64
	// OOMKills counts the container's processes the OOM killer killed
	// (for a container that ended, until the driver deletes it).
	OOMKills uint64
	// Detail is the finer sample the CRI's metrics serve (cadvisor's
	// container metrics); nil from a driver that does not take it.
	Detail *StatsDetail
}

// StatsDetail is a container's resource use as cadvisor breaks it down.
// Times are nanoseconds, sizes bytes; a counter the host does not keep
// is zero.
type StatsDetail struct {
	// CPUUser and CPUSystem split CPUTotal by mode.
	CPUUser, CPUSystem uint64
	// CFS bandwidth: the periods that elapsed, those in which the
	// container was throttled, and the time it was throttled for.
	CPUPeriods, CPUThrottledPeriods, CPUThrottledTime uint64

	// MemTotal is the usage with all of the page cache (Stats.MemUsage
	// leaves the inactive part out); MemMaxUsage its high-water mark.
	MemTotal, MemMaxUsage uint64
	// MemCache is the page cache, MemRSS anonymous memory, MemMappedFile
	// mapped files, MemSwap swap alone, MemKernel kernel memory.
	MemCache, MemRSS, MemMappedFile, MemSwap, MemKernel uint64
	// MemFailcnt counts the times usage hit the limit.
	MemFailcnt uint64
	// Page faults, minor and major, of the container alone and of its
	// hierarchy (equal when the host counts only one).
	PageFaults, MajorPageFaults                   uint64
	HierarchyPageFaults, HierarchyMajorPageFaults uint64

	// Interfaces are its network namespace's, loopback excluded (none
	// for a container on the host's network).
	Interfaces []InterfaceStats
	// Devices is block I/O per device.
	Devices []BlockDeviceStats
	// HugePages is usage per huge page size.
	HugePages []HugePageStats
	// Pressure is the kernel's pressure stall information (cgroup v2
	// only; nil elsewhere).
	Pressure *PressureStats

	// Processes, threads, open file descriptors and, of those, sockets,
	// over the container's processes.
	Processes, Threads, FileDescriptors, Sockets uint64
	// ThreadsMax is the pids limit (0: none).
	ThreadsMax uint64
	// OpenFilesSoftLimit is the init's RLIMIT_NOFILE soft limit (-1:
	// unlimited).
	OpenFilesSoftLimit int64

	// Limits are those the container was created or last updated with.
	Limits ResourceLimits
}

// InterfaceStats are one network interface's counters.
type InterfaceStats struct {
	Name                                    string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// BlockDeviceStats is the block I/O to one device.
type BlockDeviceStats struct {
	Major, Minor uint64
	// Name is the device's node under /dev ("" if unknown).
	Name                  string
	ReadBytes, WriteBytes uint64
	Reads, Writes         uint64
}

// HugePageStats is the use of one huge page size ("2MB").
type HugePageStats struct {
	PageSize        string
	Usage, MaxUsage uint64
}

// PressureStats are the total stall times (ns): Some when at least one
// task waited for the resource, Full when all did.
type PressureStats struct {
	CPUSome, CPUFull, MemorySome, MemoryFull, IOSome, IOFull uint64
}

// ResourceLimits are a container's configured limits; zero is unset
// (the kernel's default applies), MemLimit and MemSwapLimit zero are
// unlimited. MemSwapLimit is memory plus swap, as in the OCI spec.
type ResourceLimits struct {
	CPUShares, CPUPeriod     uint64
	CPUQuota                 int64
	MemLimit, MemReservation uint64
	MemSwapLimit             uint64
}
