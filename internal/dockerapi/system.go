//go:build linux

package dockerapi

import (
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"golang.org/x/sys/unix"
)

func (s *Server) ping(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Builder-Version", "1")
	// A dockerd outside a swarm says so (clients read it before /info).
	w.Header().Set("Swarm", "inactive")
	w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", "0")
		return nil
	}
	_, err := w.Write([]byte("OK"))
	return err
}

func kernelVersion() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func (s *Server) versionInfo(w http.ResponseWriter, _ *http.Request) error {
	v := system.VersionResponse{
		Platform: system.PlatformInfo{Name: "berth"}, Version: s.version, APIVersion: APIVersion, MinAPIVersion: MinAPIVersion,
		Os: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version(), KernelVersion: kernelVersion(),
		Components: []system.ComponentVersion{{Name: "Engine", Version: s.version, Details: map[string]string{
			"ApiVersion": APIVersion, "MinAPIVersion": MinAPIVersion, "Os": runtime.GOOS, "Arch": runtime.GOARCH,
			"GoVersion": runtime.Version(), "KernelVersion": kernelVersion(),
		}}},
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	list, err := s.e.List(r.Context())
	if err != nil {
		return err
	}
	imgs, err := s.e.Images().List(r.Context())
	if err != nil {
		return err
	}
	ids := map[string]bool{}
	for _, i := range imgs {
		ids[i.ID()] = true
	}
	host, _ := os.Hostname()
	in := system.Info{
		ID: "berth", Images: len(ids), Driver: "overlay", LoggingDriver: "json-file", CgroupDriver: "cgroupfs",
		CgroupVersion: cgroupVersion(), KernelVersion: kernelVersion(), OperatingSystem: osName(), OSType: "linux",
		Architecture: unameMachine(), NCPU: runtime.NumCPU(), MemTotal: memTotal(), Name: host, ServerVersion: s.version,
		DockerRootDir: s.e.Root(), SystemTime: time.Now().Format(time.RFC3339Nano), IndexServerAddress: "https://index.docker.io/v1/",
		RegistryConfig: &registry.ServiceConfig{}, MemoryLimit: true, SwapLimit: true, CPUCfsPeriod: true, CPUCfsQuota: true,
		CPUShares: true, CPUSet: true, PidsLimit: true, IPv4Forwarding: true, SecurityOptions: []string{"name=seccomp,profile=builtin"},
		Runtimes:       map[string]system.RuntimeWithStatus{"linux": {Runtime: system.Runtime{Path: "berth-runtime"}}},
		DefaultRuntime: "linux", Labels: []string{}, Warnings: []string{}, CDISpecDirs: []string{},
		Swarm: swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
	}
	for _, c := range list {
		in.Containers++
		switch c.State.Status {
		case engine.StatusRunning, engine.StatusRestarting:
			in.ContainersRunning++
		case engine.StatusPaused:
			in.ContainersPaused++
		default:
			in.ContainersStopped++
		}
	}
	return writeJSON(w, http.StatusOK, in)
}

func cgroupVersion() string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "2"
	}
	return "1"
}

func unameMachine() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return runtime.GOARCH
	}
	return unix.ByteSliceToString(u.Machine[:])
}

func osName() string {
	data, _ := os.ReadFile("/etc/os-release")
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

func memTotal() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}
