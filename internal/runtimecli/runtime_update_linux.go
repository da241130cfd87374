package runtimecli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/runtime/linux"
)

func (g *runtimeGlobals) updateCmd() *cobra.Command {
	var resources string
	cmd := &cobra.Command{
		Use:   "update [flags] <container-id>",
		Short: "Change a running container's resource limits",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.locked(args[0], func(c *linux.Container) error {
				res, err := updatedResources(c, resources, cmd)
				if err != nil {
					return err
				}
				return c.Update(res)
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&resources, "resources", "r", "", "a JSON file of linux.resources (- for stdin)")
	f.String("blkio-weight", "", "block IO weight, 10-1000")
	f.String("cpu-period", "", "CPU CFS period in microseconds")
	f.String("cpu-quota", "", "CPU CFS quota in microseconds")
	f.String("cpu-share", "", "CPU shares (relative weight)")
	f.String("cpu-rt-period", "", "CPU realtime period in microseconds")
	f.String("cpu-rt-runtime", "", "CPU realtime runtime in microseconds")
	f.String("cpuset-cpus", "", "CPUs to use")
	f.String("cpuset-mems", "", "memory nodes to use")
	f.String("memory", "", "memory limit in bytes (k, m, g suffixes)")
	f.String("memory-reservation", "", "memory soft limit in bytes")
	f.String("memory-swap", "", "memory plus swap limit in bytes (-1 unlimited)")
	f.String("kernel-memory", "", "ignored: kernel memory limits are deprecated")
	f.String("kernel-memory-tcp", "", "ignored: kernel memory limits are deprecated")
	f.String("pids-limit", "", "maximum number of processes")
	f.String("l3-cache-schema", "", "not supported")
	f.String("mem-bw-schema", "", "not supported")
	return cmd
}

// updatedResources is the container's resources with --resources (a whole
// linux.resources object) and the flags applied.
func updatedResources(c *linux.Container, resources string, cmd *cobra.Command) (*specs.LinuxResources, error) {
	res := &specs.LinuxResources{}
	if c.Spec.Linux != nil && c.Spec.Linux.Resources != nil {
		// Start from what the container has, so a flag changes one value.
		data, _ := json.Marshal(c.Spec.Linux.Resources)
		json.Unmarshal(data, res)
	}
	if resources != "" {
		var in io.Reader = os.Stdin
		if resources != "-" {
			f, err := os.Open(resources)
			if err != nil {
				return nil, fmt.Errorf("--resources: %w", err)
			}
			defer f.Close()
			in = f
		}
		res = &specs.LinuxResources{}
		if err := json.NewDecoder(in).Decode(res); err != nil {
			return nil, fmt.Errorf("--resources %s: %w", resources, err)
		}
	}
	if err := applyUpdateFlags(cmd, res); err != nil {
		return nil, err
	}
	return res, nil
}

func parseBytes(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult, s = 1<<10, s[:n-1]
		case 'm', 'M':
			mult, s = 1<<20, s[:n-1]
		case 'g', 'G':
			mult, s = 1<<30, s[:n-1]
		case 'b', 'B':
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	return v * mult, nil
}

func applyUpdateFlags(cmd *cobra.Command, res *specs.LinuxResources) error {
	get := func(name string) (string, bool) {
		if !cmd.Flags().Changed(name) {
			return "", false
		}
		v, _ := cmd.Flags().GetString(name)
		return v, true
	}
	for _, name := range []string{"l3-cache-schema", "mem-bw-schema"} {
		if _, ok := get(name); ok {
			return fmt.Errorf("--%s: Intel RDT is not supported", name)
		}
	}
	cpu := func() *specs.LinuxCPU {
		if res.CPU == nil {
			res.CPU = &specs.LinuxCPU{}
		}
		return res.CPU
	}
	mem := func() *specs.LinuxMemory {
		if res.Memory == nil {
			res.Memory = &specs.LinuxMemory{}
		}
		return res.Memory
	}
	uints := map[string]func(uint64){
		"cpu-period":    func(v uint64) { cpu().Period = &v },
		"cpu-share":     func(v uint64) { cpu().Shares = &v },
		"cpu-rt-period": func(v uint64) { cpu().RealtimePeriod = &v },
	}
	for name, set := range uints {
		if s, ok := get(name); ok {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return fmt.Errorf("--%s %q: %w", name, s, err)
			}
			set(v)
		}
	}
	ints := map[string]func(int64){
		"cpu-quota":      func(v int64) { cpu().Quota = &v },
		"cpu-rt-runtime": func(v int64) { cpu().RealtimeRuntime = &v },
		"pids-limit": func(v int64) {
			res.Pids = &specs.LinuxPids{Limit: &v}
		},
	}
	for name, set := range ints {
		if s, ok := get(name); ok {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("--%s %q: %w", name, s, err)
			}
			set(v)
		}
	}
	sizes := map[string]func(int64){
		"memory":             func(v int64) { mem().Limit = &v },
		"memory-reservation": func(v int64) { mem().Reservation = &v },
		"memory-swap":        func(v int64) { mem().Swap = &v },
	}
	for name, set := range sizes {
		if s, ok := get(name); ok {
			v, err := parseBytes(s)
			if err != nil {
				return fmt.Errorf("--%s %q: use a byte count with an optional k, m or g suffix", name, s)
			}
			set(v)
		}
	}
	if s, ok := get("cpuset-cpus"); ok {
		cpu().Cpus = s
	}
	if s, ok := get("cpuset-mems"); ok {
		cpu().Mems = s
	}
	if s, ok := get("blkio-weight"); ok {
		v, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return fmt.Errorf("--blkio-weight %q: %w", s, err)
		}
		w := uint16(v)
		if res.BlockIO == nil {
			res.BlockIO = &specs.LinuxBlockIO{}
		}
		res.BlockIO.Weight = &w
	}
	return nil
}
