//go:build linux

package dockerapi

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/network"
	"github.com/moby/moby/api/types/container"
	mobyimage "github.com/moby/moby/api/types/image"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
)

// The object verbs: networks and volumes (create, remove, connect,
// disconnect), images (tag, remove), container stats.

// networkByRef finds a network by name, ID or ID prefix.
func (s *Server) networkByRef(r *http.Request, ref string) (*network.Config, error) {
	m, err := s.e.Networks()
	if err != nil {
		return nil, err
	}
	if n, err := m.Get(r.Context(), ref); err == nil {
		return n, nil
	}
	nets, err := m.List(r.Context())
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		if ref != "" && strings.HasPrefix(n.ID, ref) || ref == "bridge" && n.Default {
			return n, nil
		}
	}
	return nil, httpError{http.StatusNotFound, "network " + ref + " not found"}
}

func (s *Server) createNetwork(w http.ResponseWriter, r *http.Request) error {
	var req mobynet.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return httpError{http.StatusBadRequest, "network name is required"}
	}
	// Attachable is let through: it opens swarm networks to standalone
	// containers, and a local network is open to them anyway (dockerd
	// takes it on a bridge too; testcontainers asks for it).
	if req.Scope != "" && req.Scope != "local" || req.Ingress || req.ConfigOnly || req.ConfigFrom != nil {
		return httpError{http.StatusBadRequest, "berth has local networks only (no swarm scope, ingress or config-only networks)"}
	}
	o := network.CreateOptions{Name: req.Name, Driver: req.Driver, Internal: req.Internal, Labels: req.Labels, Options: req.Options}
	if req.EnableIPv6 != nil {
		o.IPv6 = *req.EnableIPv6
	}
	if req.IPAM != nil {
		if req.IPAM.Driver != "" && req.IPAM.Driver != "default" {
			return httpError{http.StatusBadRequest, "IPAM driver " + req.IPAM.Driver + ": berth has the default one"}
		}
		// Refused by name rather than dropped: what berth's networks
		// cannot hold (host-local hands out one address per family).
		if len(req.IPAM.Options) > 0 {
			return httpError{http.StatusBadRequest, "IPAM options: berth's default IPAM takes none"}
		}
		seen := map[bool]bool{}
		for _, c := range req.IPAM.Config {
			if len(c.AuxAddress) > 0 {
				return httpError{http.StatusBadRequest, "AuxiliaryAddresses (--aux-address): berth does not reserve addresses in a subnet; narrow the containers' addresses with IPRange (--ip-range) instead"}
			}
			v6 := c.Subnet.Addr().Is6() || !c.Subnet.IsValid() && c.Gateway.Is6()
			if seen[v6] {
				return httpError{http.StatusBadRequest, fmt.Sprintf("IPAM: more than one %s subnet: a berth network has one IPv4 and one IPv6 subnet", map[bool]string{false: "IPv4", true: "IPv6"}[v6])}
			}
			seen[v6] = true
			sub, gw, rng := &o.Subnet, &o.Gateway, &o.IPRange
			if v6 {
				sub, gw, rng = &o.Subnet6, &o.Gateway6, &o.IPRange6
				o.IPv6 = true
			}
			if c.Subnet.IsValid() {
				*sub = c.Subnet.String()
			}
			if c.Gateway.IsValid() {
				*gw = c.Gateway.String()
			}
			if c.IPRange.IsValid() {
				*rng = c.IPRange.String()
			}
		}
	}
	if o.Options == nil {
		o.Options = map[string]string{}
	}
	n, err := s.e.CreateNetwork(r.Context(), o)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, mobynet.CreateResponse{ID: n.ID})
}

func (s *Server) removeNetwork(w http.ResponseWriter, r *http.Request) error {
	n, err := s.networkByRef(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.e.RemoveNetwork(r.Context(), n.Name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) connectNetwork(w http.ResponseWriter, r *http.Request) error {
	n, err := s.networkByRef(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	var req mobynet.ConnectRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	nr := engine.NetworkRequest{Name: n.Name}
	if es := req.EndpointConfig; es != nil {
		nr.Aliases = es.Aliases
		if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid() {
			nr.IP = es.IPAMConfig.IPv4Address.String()
		}
		if len(es.MacAddress) > 0 {
			nr.MAC = es.MacAddress.String()
		}
	}
	if err := s.e.Connect(r.Context(), req.Container, n.Name, nr); err != nil {
		return noSuchContainer(req.Container, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) disconnectNetwork(w http.ResponseWriter, r *http.Request) error {
	n, err := s.networkByRef(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	var req mobynet.DisconnectRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := s.e.Disconnect(r.Context(), req.Container, n.Name); err != nil {
		return noSuchContainer(req.Container, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) createVolume(w http.ResponseWriter, r *http.Request) error {
	var req volume.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.ClusterVolumeSpec != nil {
		return httpError{http.StatusBadRequest, "berth has no cluster volumes"}
	}
	// An existing volume of that name is returned as it is (docker's).
	if req.Name != "" {
		if v, err := s.e.GetVolume(r.Context(), req.Name); err == nil {
			return writeJSON(w, http.StatusCreated, s.views.Volume(v))
		}
	}
	v, err := s.e.CreateVolumeWith(r.Context(), engine.VolumeOptions{Name: req.Name, Driver: req.Driver, Labels: req.Labels, Options: req.DriverOpts})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, s.views.Volume(v))
}

func (s *Server) removeVolume(w http.ResponseWriter, r *http.Request) error {
	if err := s.e.RemoveVolume(r.Context(), r.PathValue("name"), boolParam(r, "force")); err != nil {
		if statusOf(err) == http.StatusNotFound {
			return httpError{http.StatusNotFound, "get " + r.PathValue("name") + ": no such volume"}
		}
		if strings.Contains(err.Error(), "in use") {
			return httpError{http.StatusConflict, err.Error()}
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// imagePost serves POST /images/{name}/tag and /push (names hold
// slashes).
func (s *Server) imagePost(w http.ResponseWriter, r *http.Request) error {
	if name, ok := strings.CutSuffix(r.PathValue("rest"), "/push"); ok {
		return s.pushImage(w, r, name)
	}
	name, ok := strings.CutSuffix(r.PathValue("rest"), "/tag")
	if !ok {
		return httpError{http.StatusNotFound, "page not found"}
	}
	target := r.URL.Query().Get("repo")
	if target == "" {
		return httpError{http.StatusBadRequest, "repo is required"}
	}
	if tag := r.URL.Query().Get("tag"); tag != "" {
		target += ":" + tag
	}
	if _, err := s.e.Images().Tag(r.Context(), name, target); err != nil {
		if statusOf(err) == http.StatusNotFound {
			return httpError{http.StatusNotFound, "No such image: " + name}
		}
		return err
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

// removeImage is DELETE /images/{name}: docker's list of what was
// untagged and deleted.
func (s *Server) removeImage(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("rest")
	res, err := s.e.Images().Remove(r.Context(), name, boolParam(r, "force"))
	if err != nil {
		switch statusOf(err) {
		case http.StatusNotFound:
			return httpError{http.StatusNotFound, "No such image: " + name}
		case http.StatusInternalServerError:
			if strings.Contains(err.Error(), "in use") || strings.Contains(err.Error(), "used by") {
				return httpError{http.StatusConflict, err.Error()}
			}
		}
		return err
	}
	out := []mobyimage.DeleteResponse{}
	for _, u := range res.Untagged {
		out = append(out, mobyimage.DeleteResponse{Untagged: u})
	}
	for _, d := range res.Deleted {
		out = append(out, mobyimage.DeleteResponse{Deleted: d})
	}
	return writeJSON(w, http.StatusOK, out)
}

// containerStats is GET /containers/{id}/stats: one sample (with
// one-shot=1), two a second apart (stream=0, so the CLI can compute CPU
// %), or one a second until the client goes.
func (s *Server) containerStats(w http.ResponseWriter, r *http.Request) error {
	c, err := s.container(r)
	if err != nil {
		return err
	}
	stream := r.URL.Query().Get("stream") == "" || boolParam(r, "stream")
	oneShot := boolParam(r, "one-shot")
	sample := func() (*engine.StatsSample, error) { return s.e.Stats(r.Context(), c.ID) }
	prev, err := sample()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	for {
		var cur *engine.StatsSample
		if oneShot {
			cur, prev = prev, nil
		} else {
			select {
			case <-r.Context().Done():
				return nil
			case <-time.After(time.Second):
			}
			if cur, err = sample(); err != nil {
				return nil
			}
		}
		if err := jsonBody(w, statsResponse(c, prev, cur)); err != nil {
			return nil
		}
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		if !stream || oneShot {
			return nil
		}
		prev = cur
	}
}

func statsResponse(c *engine.Container, prev, cur *engine.StatsSample) container.StatsResponse {
	out := container.StatsResponse{ID: c.ID, Name: "/" + c.Name, OSType: "linux", Read: cur.Read}
	fill := func(cs *container.CPUStats, s *engine.StatsSample) {
		cs.CPUUsage.TotalUsage, cs.SystemUsage, cs.OnlineCPUs = s.CPUTotal, s.SystemCPU, uint32(s.OnlineCPUs)
		if d := s.Detail; d != nil {
			cs.CPUUsage.UsageInUsermode, cs.CPUUsage.UsageInKernelmode = d.CPUUser, d.CPUSystem
			cs.ThrottlingData = container.ThrottlingData{Periods: d.CPUPeriods, ThrottledPeriods: d.CPUThrottledPeriods, ThrottledTime: d.CPUThrottledTime}
		}
	}
	fill(&out.CPUStats, cur)
	if prev != nil {
		fill(&out.PreCPUStats, prev)
		out.PreRead = prev.Read
	}
	// num_procs is Windows's; dockerd sends 0 on Linux.
	if !cur.Running {
		return out
	}
	out.MemoryStats = container.MemoryStats{Usage: cur.MemUsage, Limit: cur.MemLimit, Stats: map[string]uint64{}}
	out.PidsStats = container.PidsStats{Current: cur.Pids}
	out.Networks = map[string]container.NetworkStats{"eth0": {RxBytes: cur.NetRx, TxBytes: cur.NetTx}}
	out.BlkioStats = container.BlkioStats{IoServiceBytesRecursive: []container.BlkioStatEntry{
		{Op: "read", Value: cur.BlockRead}, {Op: "write", Value: cur.BlockWrite}}}
	d := cur.Detail
	if d == nil {
		return out
	}
	// cgroup v1's shape: usage with all of the page cache, and its
	// inactive part in stats, which the docker CLI subtracts (so its
	// MEM USAGE is berth's, without the inactive cache).
	if d.MemTotal >= cur.MemUsage {
		inactive := d.MemTotal - cur.MemUsage
		out.MemoryStats.Usage = d.MemTotal
		out.MemoryStats.Stats = map[string]uint64{
			"cache": d.MemCache, "rss": d.MemRSS, "mapped_file": d.MemMappedFile, "swap": d.MemSwap,
			"total_cache": d.MemCache, "total_rss": d.MemRSS, "total_mapped_file": d.MemMappedFile, "total_swap": d.MemSwap,
			"inactive_file": inactive, "total_inactive_file": inactive,
			"pgfault": d.PageFaults, "pgmajfault": d.MajorPageFaults, "total_pgfault": d.HierarchyPageFaults, "total_pgmajfault": d.HierarchyMajorPageFaults,
		}
	}
	out.MemoryStats.MaxUsage, out.MemoryStats.Failcnt = d.MemMaxUsage, d.MemFailcnt
	out.PidsStats.Limit = d.ThreadsMax
	if c.HostConfig.NetworkMode == "host" {
		out.Networks = nil
	} else if len(d.Interfaces) > 0 {
		out.Networks = map[string]container.NetworkStats{}
		for _, i := range d.Interfaces {
			out.Networks[i.Name] = container.NetworkStats{RxBytes: i.RxBytes, RxPackets: i.RxPackets, RxErrors: i.RxErrors, RxDropped: i.RxDropped,
				TxBytes: i.TxBytes, TxPackets: i.TxPackets, TxErrors: i.TxErrors, TxDropped: i.TxDropped}
		}
	}
	if len(d.Devices) > 0 {
		bytes, ops := []container.BlkioStatEntry{}, []container.BlkioStatEntry{}
		for _, dev := range d.Devices {
			bytes = append(bytes, container.BlkioStatEntry{Major: dev.Major, Minor: dev.Minor, Op: "read", Value: dev.ReadBytes},
				container.BlkioStatEntry{Major: dev.Major, Minor: dev.Minor, Op: "write", Value: dev.WriteBytes})
			ops = append(ops, container.BlkioStatEntry{Major: dev.Major, Minor: dev.Minor, Op: "read", Value: dev.Reads},
				container.BlkioStatEntry{Major: dev.Major, Minor: dev.Minor, Op: "write", Value: dev.Writes})
		}
		out.BlkioStats = container.BlkioStats{IoServiceBytesRecursive: bytes, IoServicedRecursive: ops}
	}
	return out
}
