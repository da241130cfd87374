//go:build linux

package dockerapi

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/engine/spec"
	"github.com/berth-dev/berth/internal/engine/store"
	"github.com/berth-dev/berth/internal/events"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/network"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	mobynet "github.com/moby/moby/api/types/network"
)

func (s *Server) listContainers(w http.ResponseWriter, r *http.Request) error {
	f, err := filters(r)
	if err != nil {
		return err
	}
	cf, err := s.containerFilter(r.Context(), f)
	if err != nil {
		return err
	}
	list, err := s.e.List(r.Context())
	if err != nil {
		return err
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	// A limit, like a status filter, lists stopped containers too
	// (docker ps -n, -l).
	all := boolParam(r, "all") || limit > 0 || len(f["status"]) > 0
	size := boolParam(r, "size")
	now := time.Now()
	out := []container.Summary{}
	// Newest first, as docker lists them.
	for i := len(list) - 1; i >= 0; i-- {
		c := list[i]
		if at := cf.position(c); at == stop {
			break
		} else if at == exclude {
			continue
		}
		if !all && !c.Running() || !cf.record(c) {
			continue
		}
		sum := s.views.Summary(r.Context(), s.e, c, now)
		if !cf.listing(sum) {
			continue
		}
		if size {
			sum.SizeRw, sum.SizeRootFs = s.e.ContainerSizes(r.Context(), c)
		}
		out = append(out, sum)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) container(r *http.Request) (*engine.Container, error) {
	c, err := s.e.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, noSuchContainer(r.PathValue("id"), err)
	}
	return c, nil
}

// noSuchContainer is docker's wording of a missing container.
func noSuchContainer(ref string, err error) error {
	if statusOf(err) == http.StatusNotFound {
		return httpError{http.StatusNotFound, "No such container: " + ref}
	}
	return err
}

func (s *Server) inspectContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	v := s.views.Container(r.Context(), s.e, c)
	if boolParam(r, "size") {
		rw, root := s.e.ContainerSizes(r.Context(), c)
		v.SizeRw, v.SizeRootFs = &rw, &root
	}
	if st := v.State; st != nil && !st.Running && s.restartInProgress(c.ID) {
		// Between the exit and the start of a restart asked here: say
		// so. compose's event monitor inspects a container at its die
		// and, unless it is running or restarting, stops following it
		// (its logs -f ends at a compose restart).
		st.Restarting, st.Status = true, container.StateRestarting
	}
	return writeJSON(w, http.StatusOK, v)
}

// restartInProgress says whether a restart of container id asked through
// this server is under way.
func (s *Server) restartInProgress(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarting[id] > 0
}

func (s *Server) createContainer(w http.ResponseWriter, r *http.Request) error {
	var req container.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Config == nil || req.Config.Image == "" {
		return httpError{http.StatusBadRequest, "config: an image is required"}
	}
	o, err := createOptions(r.URL.Query().Get("name"), &req)
	if err != nil {
		return httpError{http.StatusBadRequest, err.Error()}
	}
	recs, err := s.e.Images().Get(r.Context(), o.Image)
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return httpError{http.StatusNotFound, "No such image: " + o.Image}
		}
		return err
	}
	// Never run another platform's image silently; docker's answer (a
	// 404, so that its CLI pulls the platform asked for).
	if p := r.URL.Query().Get("platform"); p != "" && len(recs) > 0 && recs[0].Platform != "" && !image.SamePlatform(p, recs[0].Platform) {
		return httpError{http.StatusNotFound, fmt.Sprintf("image with reference %s was found but does not match the specified platform: wanted %s, actual: %s", o.Image, p, recs[0].Platform)}
	}
	c, err := s.e.Create(r.Context(), o)
	if err != nil {
		return err
	}
	// The CLI prints them (berth added its /etc/subuid entry, say).
	return writeJSON(w, http.StatusCreated, container.CreateResponse{ID: c.ID, Warnings: append([]string{}, c.Warnings...)})
}

// createOptions maps docker's create request onto the engine's options.
// What berth has no equivalent for is refused by name rather than
// dropped (see unsupported).
func createOptions(name string, req *container.CreateRequest) (engine.CreateOptions, error) {
	cfg := req.Config
	hc := req.HostConfig
	if hc == nil {
		hc = &container.HostConfig{}
	}
	o := engine.CreateOptions{
		Name: name, Image: cfg.Image, Cmd: cfg.Cmd, Env: cfg.Env, User: cfg.User, WorkingDir: cfg.WorkingDir,
		Hostname: cfg.Hostname, Tty: cfg.Tty, OpenStdin: cfg.OpenStdin, ConsoleSize: hc.ConsoleSize, Labels: cfg.Labels, StopSignal: cfg.StopSignal,
		StopTimeout: cfg.StopTimeout, Binds: hc.Binds, ReadOnly: hc.ReadonlyRootfs, Privileged: hc.Privileged,
		CapAdd: hc.CapAdd, CapDrop: hc.CapDrop, SecurityOpt: hc.SecurityOpt, Memory: hc.Memory,
		CPUs: float64(hc.NanoCPUs) / 1e9, AutoRemove: hc.AutoRemove, PublishAll: hc.PublishAllPorts,
		DNSSearch: hc.DNSSearch, ExtraHosts: hc.ExtraHosts, Isolation: string(hc.Isolation),
		NetworkMode: string(hc.NetworkMode),
		Restart:     engine.RestartPolicy{Name: string(hc.RestartPolicy.Name), MaximumRetryCount: hc.RestartPolicy.MaximumRetryCount},
	}
	if o.Restart.Name == "" {
		o.Restart.Name = "no"
	}
	o.Domainname, o.Annotations, o.DNSOptions, o.GroupAdd, o.Links = cfg.Domainname, hc.Annotations, hc.DNSOptions, hc.GroupAdd, hc.Links
	o.Sysctls, o.DeviceCgroupRules, o.VolumesFrom, o.CgroupParent = hc.Sysctls, hc.DeviceCgroupRules, hc.VolumesFrom, hc.CgroupParent
	o.PidMode, o.IpcMode, o.UTSMode = string(hc.PidMode), string(hc.IpcMode), string(hc.UTSMode)
	o.CgroupnsMode, o.UsernsMode = string(hc.CgroupnsMode), string(hc.UsernsMode)
	o.ShmSize, o.OOMScoreAdj = hc.ShmSize, nil
	if hc.OomScoreAdj != 0 {
		adj := hc.OomScoreAdj
		o.OOMScoreAdj = &adj
	}
	o.Resources = spec.Resources{CPUShares: hc.CPUShares, CPUPeriod: hc.CPUPeriod, CPUQuota: hc.CPUQuota, CpusetCpus: hc.CpusetCpus,
		CpusetMems: hc.CpusetMems, MemorySwap: hc.MemorySwap, MemoryReservation: hc.MemoryReservation, BlkioWeight: hc.BlkioWeight}
	if hc.OomKillDisable != nil {
		o.Resources.OomKillDisable = *hc.OomKillDisable
	}
	for _, d := range hc.Devices {
		spec := d.PathOnHost
		if d.PathInContainer != "" {
			spec += ":" + d.PathInContainer
			if d.CgroupPermissions != "" {
				spec += ":" + d.CgroupPermissions
			}
		}
		o.Devices = append(o.Devices, spec)
	}
	for p := range cfg.ExposedPorts {
		o.Expose = append(o.Expose, p.String())
	}
	slices.Sort(o.Expose)
	switch o.NetworkMode {
	case "", "default":
		o.NetworkMode = "bridge"
		// No mode but one endpoint: the endpoint names the network, as
		// podman takes it (testcontainers relies on it where the
		// default network is not called bridge).
		if req.NetworkingConfig != nil && len(req.NetworkingConfig.EndpointsConfig) == 1 {
			for name := range req.NetworkingConfig.EndpointsConfig {
				o.NetworkMode = name
			}
		}
	}
	if o.Isolation == "" || o.Isolation == "default" {
		o.Isolation = "linux"
	}
	if cfg.Entrypoint != nil {
		ep := []string(cfg.Entrypoint)
		o.Entrypoint = &ep
	}
	if hc.Init != nil {
		o.Init = *hc.Init
	}
	if hc.PidsLimit != nil {
		o.PidsLimit = *hc.PidsLimit
	}
	for _, d := range hc.DNS {
		o.DNS = append(o.DNS, d.String())
	}
	for _, u := range hc.Ulimits {
		o.Ulimits = append(o.Ulimits, fmt.Sprintf("%s=%d:%d", u.Name, u.Soft, u.Hard))
	}
	for path, opts := range hc.Tmpfs {
		if opts != "" {
			path += ":" + opts
		}
		o.Tmpfs = append(o.Tmpfs, path)
	}
	slices.Sort(o.Tmpfs)
	for _, m := range hc.Mounts {
		switch m.Type {
		case mount.TypeBind, mount.TypeVolume:
			spec, extra, err := mountBind(m)
			if err != nil {
				return o, err
			}
			o.Binds = append(o.Binds, spec)
			if extra != nil {
				if o.MountExtras == nil {
					o.MountExtras = map[string]engine.MountExtra{}
				}
				o.MountExtras[filepath.Clean(m.Target)] = *extra
			}
		case mount.TypeTmpfs:
			spec, err := tmpfsMount(m)
			if err != nil {
				return o, err
			}
			o.Tmpfs = append(o.Tmpfs, spec)
		default:
			return o, fmt.Errorf("mount type %q: berth has bind, volume and tmpfs", m.Type)
		}
	}
	// docker run -v /path: an anonymous volume, sent in Config.Volumes.
	for _, target := range slices.Sorted(maps.Keys(cfg.Volumes)) {
		if !mountsOn(o, target) {
			o.Binds = append(o.Binds, target)
		}
	}
	for k, v := range hc.LogConfig.Config {
		switch k {
		case "max-size":
			n, err := parseSize(v)
			if err != nil {
				return o, fmt.Errorf("log-opt max-size=%s: %w", v, err)
			}
			o.LogMaxSize = n
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return o, fmt.Errorf("log-opt max-file=%s: a number from 1", v)
			}
			o.LogMaxFiles = n
		default:
			return o, fmt.Errorf("log-opt %s: berth's json-file log takes max-size and max-file", k)
		}
	}
	switch d := hc.LogConfig.Type; d {
	case "", engine.LogJSONFile, "local", engine.LogK8sFile, engine.LogNone:
		o.LogDriver = d
	default:
		return o, fmt.Errorf("log driver %q: berth writes json-file (docker's), k8s-file (the CRI's format) or none", d)
	}
	for p, binds := range hc.PortBindings {
		for _, b := range binds {
			hp := 0
			if b.HostPort != "" {
				lo, _, _ := strings.Cut(b.HostPort, "-")
				n, err := strconv.Atoi(lo)
				if err != nil {
					return o, fmt.Errorf("port binding %s: host port %q", p, b.HostPort)
				}
				hp = n
			}
			m := network.PortMapping{HostPort: hp, ContainerPort: int(p.Num()), Protocol: string(p.Proto())}
			if b.HostIP.IsValid() && !b.HostIP.IsUnspecified() || b.HostIP.Is6() {
				m.HostIP = b.HostIP.String()
			}
			o.Ports = append(o.Ports, m)
		}
	}
	slices.SortFunc(o.Ports, func(a, b network.PortMapping) int { return a.ContainerPort - b.ContainerPort })
	if h := cfg.Healthcheck; h != nil {
		switch {
		case len(h.Test) > 0 && h.Test[0] == "NONE":
			o.NoHealthcheck = true
		case len(h.Test) > 1 && h.Test[0] == "CMD-SHELL":
			o.HealthCmd = h.Test[1]
		case len(h.Test) > 1 && h.Test[0] == "CMD":
			o.HealthCmd = shellJoin(h.Test[1:])
		}
		o.HealthInterval, o.HealthTimeout, o.HealthStartPeriod, o.HealthRetries = h.Interval, h.Timeout, h.StartPeriod, h.Retries
		o.HealthStartInterval = h.StartInterval
	}
	if req.NetworkingConfig != nil {
		if err := endpoints(&o, req.NetworkingConfig.EndpointsConfig); err != nil {
			return o, err
		}
	}
	return o, unsupported(hc)
}

// endpoints maps the create request's endpoints onto o: the one of its
// NetworkMode gives the first network's address and aliases, the others
// (API 1.44 allows one per network: compose sends every network of a
// service) are joined too, in name order.
func endpoints(o *engine.CreateOptions, eps map[string]*mobynet.EndpointSettings) error {
	names := slices.Sorted(maps.Keys(eps))
	for _, netName := range names {
		es := eps[netName]
		req := engine.NetworkRequest{Name: netName}
		if es != nil {
			req.Aliases = es.Aliases
			if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid() {
				req.IP = es.IPAMConfig.IPv4Address.String()
			}
			if len(es.MacAddress) > 0 {
				req.MAC = es.MacAddress.String()
			}
		}
		if network.Canonical(netName) == network.Canonical(o.NetworkMode) {
			o.Aliases, o.IP, o.MAC = req.Aliases, req.IP, req.MAC
			continue
		}
		switch o.NetworkMode {
		case "host", "none":
			return fmt.Errorf("endpoint for network %s: a container on --network %s joins no other network", netName, o.NetworkMode)
		}
		if strings.HasPrefix(o.NetworkMode, "container:") {
			return fmt.Errorf("endpoint for network %s: a container on --network %s shares that container's networks", netName, o.NetworkMode)
		}
		o.ExtraNetworks = append(o.ExtraNetworks, req)
	}
	return nil
}

// mountsOn says whether o mounts something on target already.
func mountsOn(o engine.CreateOptions, target string) bool {
	target = filepath.Clean(target)
	for _, b := range o.Binds {
		parts := strings.Split(b, ":")
		if len(parts) == 1 && filepath.Clean(parts[0]) == target || len(parts) > 1 && filepath.Clean(parts[1]) == target {
			return true
		}
	}
	for _, t := range o.Tmpfs {
		if p, _, _ := strings.Cut(t, ":"); filepath.Clean(p) == target {
			return true
		}
	}
	return false
}

// unsupported refuses, by name, host settings berth does not apply yet:
// a silently ignored limit is worse than an error.
func unsupported(hc *container.HostConfig) error {
	var names []string
	add := func(set bool, name string) {
		if set {
			names = append(names, name)
		}
	}
	add(hc.VolumeDriver != "" && hc.VolumeDriver != "local", "VolumeDriver")
	add(len(hc.StorageOpt) > 0, "StorageOpt")
	add(hc.Runtime != "" && hc.Runtime != "runc", "Runtime (berth's isolation is Isolation: linux or vm)")
	add(hc.MemorySwappiness != nil && *hc.MemorySwappiness != -1, "MemorySwappiness")
	add(len(hc.BlkioDeviceReadBps)+len(hc.BlkioDeviceWriteBps)+len(hc.BlkioDeviceReadIOps)+len(hc.BlkioDeviceWriteIOps)+len(hc.BlkioWeightDevice) > 0, "BlkioDevice*")
	add(len(hc.DeviceRequests) > 0, "DeviceRequests")
	add(hc.CPURealtimePeriod != 0 || hc.CPURealtimeRuntime != 0, "CpuRealtime*")
	if len(names) > 0 {
		return fmt.Errorf("berth does not support %s through the Docker API yet", strings.Join(names, ", "))
	}
	return nil
}

// shellJoin quotes args for sh -c.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// parseSize reads docker's sizes: 10m, 1g, 512k, 10mb, bytes.
func parseSize(s string) (int64, error) {
	s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "b")
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		}
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size")
	}
	return n * mult, nil
}

func (s *Server) startContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	if held := s.takePending(c.ID); len(held) > 0 && !c.Running() {
		if err := s.startAttached(r, c.ID, held); err != nil {
			return err
		}
	} else if _, err := s.e.Start(r.Context(), c.ID, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func timeoutParam(r *http.Request) (*int, error) {
	v := r.URL.Query().Get("t")
	if v == "" {
		v = r.URL.Query().Get("timeout")
	}
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, httpError{http.StatusBadRequest, "invalid timeout " + strconv.Quote(v)}
	}
	return &n, nil
}

// notModified is docker's 304 for a verb with nothing to do.
var notModified = httpError{http.StatusNotModified, ""}

func (s *Server) stopContainer(w http.ResponseWriter, r *http.Request) error {
	return s.onContainer(func(ctx context.Context, c *engine.Container, r *http.Request) error {
		t, err := timeoutParam(r)
		if err != nil {
			return err
		}
		sig, err := stopSignalParam(r)
		if err != nil {
			return err
		}
		if !c.Running() {
			return notModified
		}
		return s.e.StopWith(ctx, c.ID, engine.StopOptions{Timeout: t, Signal: sig})
	})(w, r)
}

func (s *Server) restartContainer(w http.ResponseWriter, r *http.Request) error {
	return s.onContainer(func(ctx context.Context, c *engine.Container, r *http.Request) error {
		t, err := timeoutParam(r)
		if err != nil {
			return err
		}
		sig, err := stopSignalParam(r)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.restarting[c.ID]++
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			if s.restarting[c.ID]--; s.restarting[c.ID] <= 0 {
				delete(s.restarting, c.ID)
			}
			s.mu.Unlock()
		}()
		return s.e.RestartWith(ctx, c.ID, engine.StopOptions{Timeout: t, Signal: sig})
	})(w, r)
}

// stopSignalParam is stop's and restart's signal query parameter (API
// 1.42, docker stop -s): the signal sent instead of the container's stop
// signal; "" for that one.
func stopSignalParam(r *http.Request) (string, error) {
	name := r.URL.Query().Get("signal")
	if name == "" {
		return "", nil
	}
	if _, err := engine.ParseSignal(name); err != nil {
		return "", httpError{http.StatusBadRequest, err.Error()}
	}
	return name, nil
}

func (s *Server) killContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	name := r.URL.Query().Get("signal")
	if name == "" {
		name = "KILL"
	}
	sig, err := engine.ParseSignal(name)
	if err != nil {
		return httpError{http.StatusBadRequest, err.Error()}
	}
	if c.State.Status != engine.StatusRunning && c.State.Status != engine.StatusPaused {
		return httpError{http.StatusConflict, fmt.Sprintf("Cannot kill container: %s: container %s is not running", r.PathValue("id"), c.ID)}
	}
	if err := s.e.Kill(r.Context(), c.ID, sig); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// onContainer is a handler that runs one engine verb on the container
// and answers 204.
func (s *Server) onContainer(verb func(ctx context.Context, c *engine.Container, r *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, err := s.container(r)
		if err != nil {
			return err
		}
		if err := verb(r.Context(), c, r); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (s *Server) pauseContainer(w http.ResponseWriter, r *http.Request) error {
	return s.onContainer(func(ctx context.Context, c *engine.Container, _ *http.Request) error { return s.e.Pause(ctx, c.ID) })(w, r)
}

func (s *Server) unpauseContainer(w http.ResponseWriter, r *http.Request) error {
	return s.onContainer(func(ctx context.Context, c *engine.Container, _ *http.Request) error { return s.e.Unpause(ctx, c.ID) })(w, r)
}

func (s *Server) renameContainer(w http.ResponseWriter, r *http.Request) error {
	return s.onContainer(func(ctx context.Context, c *engine.Container, r *http.Request) error {
		return s.e.Rename(ctx, c.ID, r.URL.Query().Get("name"))
	})(w, r)
}

func (s *Server) removeContainer(w http.ResponseWriter, r *http.Request) error {
	return s.onContainer(func(ctx context.Context, c *engine.Container, r *http.Request) error {
		err := s.e.Remove(ctx, c.ID, engine.RemoveOptions{Force: boolParam(r, "force"), Volumes: boolParam(r, "v")})
		if err != nil && strings.Contains(err.Error(), "stop it first") {
			return httpError{http.StatusConflict, fmt.Sprintf("cannot remove container %q: container is running: stop the container before removing or force remove", "/"+c.Name)}
		}
		return err
	})(w, r)
}

// waitContainer is POST /containers/{id}/wait: the headers go at once
// (the CLI waits for them before it starts the container), the body when
// the condition holds: not-running (the default), next-exit, removed.
func (s *Server) waitContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	cond := r.URL.Query().Get("condition")
	switch cond {
	case "", "not-running", "next-exit", "removed":
	default:
		return httpError{http.StatusBadRequest, "invalid condition: " + strconv.Quote(cond)}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	code, werr := s.waitFor(r, c, cond)
	resp := container.WaitResponse{StatusCode: int64(code)}
	if werr != nil {
		resp.Error = &container.WaitExitError{Message: werr.Error()}
	}
	return jsonBody(w, resp)
}

func jsonBody(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// waitFor looks at the record until cond holds: again at each change of
// the event journal (the exit handler appends its die, the removal its
// destroy, right after recording them) and at a poll.
func (s *Server) waitFor(r *http.Request, c *engine.Container, cond string) (int, error) {
	ctx := r.Context()
	id := c.ID
	since := time.Now()
	started := c.State.StartedAt
	last := c.State.ExitCode
	for {
		changed := s.e.Changed()
		cur, err := s.e.Get(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return -1, ctx.Err()
			}
			// Removed (by --rm, quicker than this poll maybe): the exit
			// code is its die event's.
			if code, ok := s.lastDie(ctx, id, since); ok {
				return code, nil
			}
			return last, nil
		}
		last = cur.State.ExitCode
		switch cond {
		case "", "not-running":
			if !cur.Running() {
				return s.recordedExit(ctx, id, last)
			}
		case "next-exit":
			if cur.State.StartedAt.After(started) || cur.Running() {
				started = time.Time{} // it ran: the next stop counts
			}
			if started.IsZero() && !cur.Running() && cur.State.Status != engine.StatusCreated {
				return s.recordedExit(ctx, id, last)
			}
		}
		if cur.Running() && cond != "removed" {
			code, err := s.e.Wait(ctx, id)
			if err == nil {
				return code, nil
			}
			if ctx.Err() != nil {
				return -1, ctx.Err()
			}
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-changed:
		case <-time.After(pollInterval(time.Since(since))):
		}
	}
}

// recordedExit is the exit code of a container seen stopped, once its
// exit is recorded: a stop may be derived from the monitor's exit file
// while its exit handler still records it, and the client's next verb
// must find the container stopped (`docker run X` and then `docker rm
// X`). last is the code seen, for a container removed meanwhile.
func (s *Server) recordedExit(ctx context.Context, id string, last int) (int, error) {
	code, err := s.e.Wait(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return last, nil
	}
	return code, err
}

// pollInterval is how long a wait that has waited so long sleeps before
// it reads the record again: a sixteenth of that, from 1 ms to 50 ms. A
// short container's removal (`docker run --rm` waits for it: 150-200 ms
// after the create here) is seen within a few milliseconds instead of 25
// on average, a long one's costs a read (well under a millisecond) every
// 50 ms.
func pollInterval(waited time.Duration) time.Duration {
	return min(max(waited/16, time.Millisecond), 50*time.Millisecond)
}

// lastDie is the exit code of container id's last die event since t.
func (s *Server) lastDie(ctx context.Context, id string, t time.Time) (int, bool) {
	code, found := 0, false
	s.e.Events().Read(ctx, events.ReadOptions{Since: t.Add(-time.Second)}, func(m events.Message) error {
		if m.Type == events.TypeContainer && m.Action == "die" && m.Actor.ID == id {
			if n, err := strconv.Atoi(m.Actor.Attributes["exitCode"]); err == nil {
				code, found = n, true
			}
		}
		return nil
	})
	return code, found
}

// containerLogs is GET /containers/{id}/logs: docker's multiplexed
// frames (a header of stream and length before each chunk) for a
// container without a tty, the raw bytes with one.
func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	stdout, stderr := boolParam(r, "stdout"), boolParam(r, "stderr")
	if !stdout && !stderr {
		return httpError{http.StatusBadRequest, "Bad parameters: you must choose at least one stream"}
	}
	o := engine.LogOptions{Follow: boolParam(r, "follow"), Timestamps: boolParam(r, "timestamps"), Tail: -1}
	if t := q.Get("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil {
			return httpError{http.StatusBadRequest, "invalid tail " + strconv.Quote(t)}
		}
		o.Tail = n
	}
	for k, dst := range map[string]*time.Time{"since": &o.Since, "until": &o.Until} {
		if v := q.Get(k); v != "" && v != "0" {
			t, err := parseUnixTime(v)
			if err != nil {
				return httpError{http.StatusBadRequest, k + ": " + err.Error()}
			}
			*dst = t
		}
	}
	if c.Config.Tty {
		w.Header().Set("Content-Type", "application/vnd.docker.raw-stream")
	} else {
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
	}
	w.WriteHeader(http.StatusOK)
	fw := &frameWriter{w: w, raw: c.Config.Tty}
	var out, errw io.Writer = io.Discard, io.Discard
	if stdout {
		out = fw.stream(1)
	}
	if stderr {
		errw = fw.stream(2)
	}
	if err := s.e.Logs(r.Context(), c.ID, o, out, errw); err != nil && r.Context().Err() == nil {
		s.log.Warn("logs", "container", c.ID, "err", err)
	}
	return nil
}

// parseUnixTime reads docker's seconds[.nanoseconds] timestamps.
func parseUnixTime(v string) (time.Time, error) {
	sec, frac, _ := strings.Cut(v, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a Unix time", v)
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, fmt.Errorf("%q is not a Unix time", v)
		}
	}
	return time.Unix(s, ns), nil
}

// frameWriter writes docker's stream frames: [stream, 0, 0, 0, len32] and
// the bytes; raw (a tty) writes the bytes alone. Safe for two streams.
type frameWriter struct {
	mu  sync.Mutex
	w   io.Writer
	raw bool
}

type streamWriter struct {
	f      *frameWriter
	stream byte
}

func (f *frameWriter) stream(n byte) io.Writer { return streamWriter{f, n} }

func (s streamWriter) Write(p []byte) (int, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if !s.f.raw {
		var hdr [8]byte
		hdr[0] = s.stream
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(p)))
		if _, err := s.f.w.Write(hdr[:]); err != nil {
			return 0, err
		}
	}
	n, err := s.f.w.Write(p)
	if fl, ok := s.f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

// tmpfsMount is a HostConfig.Mounts tmpfs as a --tmpfs value, its size,
// mode and options (compose's tmpfs: size, mode) with it, as docker
// passes them to the kernel.
func tmpfsMount(m mount.Mount) (string, error) {
	what := "tmpfs mount " + m.Target
	if m.Source != "" {
		return "", fmt.Errorf("%s: a tmpfs has no source (%q)", what, m.Source)
	}
	if m.BindOptions != nil || m.VolumeOptions != nil {
		return "", fmt.Errorf("%s: BindOptions and VolumeOptions are not for tmpfs mounts", what)
	}
	var opts []string
	if m.ReadOnly {
		opts = append(opts, "ro")
	}
	if t := m.TmpfsOptions; t != nil {
		if t.SizeBytes < 0 {
			return "", fmt.Errorf("%s: negative size %d", what, t.SizeBytes)
		}
		if t.SizeBytes > 0 {
			opts = append(opts, fmt.Sprintf("size=%d", t.SizeBytes))
		}
		if t.Mode != 0 {
			opts = append(opts, fmt.Sprintf("mode=%o", uint32(t.Mode)))
		}
		for _, o := range t.Options {
			switch {
			case len(o) == 1 && o[0] != "" && !strings.ContainsAny(o[0], ",:="):
				opts = append(opts, o[0])
			case len(o) == 2 && o[0] != "" && !strings.ContainsAny(o[0]+o[1], ",:"):
				opts = append(opts, o[0]+"="+o[1])
			default:
				return "", fmt.Errorf("%s: option %q: use [flag] or [key, value]", what, o)
			}
		}
	}
	if len(opts) == 0 {
		return m.Target, nil
	}
	return m.Target + ":" + strings.Join(opts, ","), nil
}

// mountBind is a HostConfig.Mounts bind or volume as a -v value and
// what a -v value cannot say; what berth cannot honour is refused by
// name, and a missing bind source is refused unless CreateMountpoint
// (only -v creates one otherwise), as docker does.
func mountBind(m mount.Mount) (string, *engine.MountExtra, error) {
	what := fmt.Sprintf("mount %s:%s", m.Source, m.Target)
	var opts []string
	var extra *engine.MountExtra
	if m.ReadOnly {
		opts = append(opts, "ro")
	}
	if m.TmpfsOptions != nil {
		return "", nil, fmt.Errorf("%s: TmpfsOptions are for tmpfs mounts", what)
	}
	if m.Type == mount.TypeBind {
		b := m.BindOptions
		if b == nil {
			b = &mount.BindOptions{}
		}
		if _, err := os.Stat(m.Source); err != nil && !b.CreateMountpoint {
			return "", nil, fmt.Errorf("%s: bind source path does not exist: %s", what, m.Source)
		}
		if b.Propagation != "" {
			opts = append(opts, string(b.Propagation))
		}
		if b.ReadOnlyForceRecursive && !m.ReadOnly {
			return "", nil, fmt.Errorf("%s: ReadOnlyForceRecursive needs ReadOnly", what)
		}
		if b.NonRecursive || b.ReadOnlyForceRecursive {
			extra = &engine.MountExtra{NonRecursive: b.NonRecursive, ReadOnlyRecursive: b.ReadOnlyForceRecursive}
		}
		if m.VolumeOptions != nil {
			return "", nil, fmt.Errorf("%s: VolumeOptions are for volumes, not binds", what)
		}
	} else if v := m.VolumeOptions; v != nil {
		if len(v.Labels) > 0 {
			return "", nil, fmt.Errorf("%s: berth does not support VolumeOptions.Labels here yet: create the volume first", what)
		}
		var dopts map[string]string
		if d := v.DriverConfig; d != nil {
			if d.Name != "" && d.Name != "local" {
				return "", nil, fmt.Errorf("%s: volume driver %q: berth has the local driver only", what, d.Name)
			}
			if len(d.Options) > 0 {
				dopts = d.Options
			}
		}
		if v.Subpath != "" || dopts != nil {
			extra = &engine.MountExtra{Subpath: v.Subpath, VolumeOptions: dopts}
		}
		if v.NoCopy {
			opts = append(opts, "nocopy")
		}
	}
	spec := m.Target
	if m.Source != "" || len(opts) > 0 {
		spec = m.Source + ":" + m.Target
	}
	if len(opts) > 0 {
		spec += ":" + strings.Join(opts, ",")
	}
	return spec, extra, nil
}
