package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime/oci"
)

// Values of Options.Seccomp that are not file names.
const (
	// SeccompUnconfined runs the container without a seccomp filter.
	SeccompUnconfined = "unconfined"
	// SeccompBuiltin names the default profile explicitly, as docker's
	// "builtin" does.
	SeccompBuiltin = "builtin"
)

// maxProfileSize bounds the seccomp profile file read (docker's own default
// profile is about 20 KiB).
const maxProfileSize = 4 << 20

// The profile types below are docker's seccomp profile file format
// (`docker run --security-opt seccomp=profile.json`): the runtime-spec
// fields plus archMap and per-entry includes/excludes, which are resolved
// against the container (its bounding capabilities, the host's
// architecture and kernel) into a runtime-spec linux.seccomp.

type seccompProfile struct {
	DefaultAction    specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet  *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures    []specs.Arch             `json:"architectures,omitempty"`
	ArchMap          []seccompArchMap         `json:"archMap,omitempty"`
	Syscalls         []seccompSyscall         `json:"syscalls,omitempty"`
	Flags            []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	ListenerPath     string                   `json:"listenerPath,omitempty"`
	ListenerMetadata string                   `json:"listenerMetadata,omitempty"`
}

// seccompArchMap adds SubArches to the filter when Arch is the host's.
type seccompArchMap struct {
	Arch      specs.Arch   `json:"architecture"`
	SubArches []specs.Arch `json:"subArchitectures"`
}

type seccompSyscall struct {
	// Name is the old single-name form; a profile uses Name or Names.
	Name     string                   `json:"name,omitempty"`
	Names    []string                 `json:"names,omitempty"`
	Action   specs.LinuxSeccompAction `json:"action"`
	ErrnoRet *uint                    `json:"errnoRet,omitempty"`
	Args     []specs.LinuxSeccompArg  `json:"args,omitempty"`
	Comment  string                   `json:"comment,omitempty"`
	// The entry applies only when everything Includes lists holds and
	// nothing Excludes lists does.
	Includes *seccompFilter `json:"includes,omitempty"`
	Excludes *seccompFilter `json:"excludes,omitempty"`
}

// seccompFilter is a condition on the container: Caps are capability names
// of its bounding set (all of them for includes, any for excludes); Arches
// are Go architecture names ("amd64", "arm64", "s390x") or the kernel's
// ("x86_64", "aarch64"), matched against the host's; MinKernel is
// "major.minor" or "major.minor.patch", matched against the host's kernel.
type seccompFilter struct {
	Caps      []string `json:"caps,omitempty"`
	Arches    []string `json:"arches,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

// seccompHost is what the includes and excludes of a profile are resolved
// against, besides the capabilities.
type seccompHost struct {
	goarch string         // runtime.GOARCH
	kernel *kernelVersion // nil: unknown
}

type kernelVersion struct{ major, minor, patch int }

func (k kernelVersion) atLeast(o kernelVersion) bool {
	return slices.Compare([]int{k.major, k.minor, k.patch}, []int{o.major, o.minor, o.patch}) >= 0
}

// parseKernelVersion reads the leading "major.minor[.patch]" of s (a
// uname release such as "6.1.0-18-amd64" when loose, a minKernel value
// otherwise, where nothing may follow).
func parseKernelVersion(s string, loose bool) (kernelVersion, bool) {
	var nums [3]int
	rest := s
	n := 0
	for n < 3 {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i > 9 {
			break
		}
		nums[n], _ = strconv.Atoi(rest[:i])
		n++
		rest = rest[i:]
		if n < 3 && strings.HasPrefix(rest, ".") && len(rest) > 1 && rest[1] >= '0' && rest[1] <= '9' {
			rest = rest[1:]
			continue
		}
		break
	}
	if n < 2 || (!loose && rest != "") {
		return kernelVersion{}, false
	}
	return kernelVersion{nums[0], nums[1], nums[2]}, true
}

// nativeSeccompArch maps GOARCH to the runtime-spec architecture of the
// kernel's native system call ABI.
var nativeSeccompArch = map[string]specs.Arch{
	"386":      specs.ArchX86,
	"amd64":    specs.ArchX86_64,
	"arm":      specs.ArchARM,
	"arm64":    specs.ArchAARCH64,
	"loong64":  specs.ArchLOONGARCH64,
	"mips":     specs.ArchMIPS,
	"mipsle":   specs.ArchMIPSEL,
	"mips64":   specs.ArchMIPS64,
	"mips64le": specs.ArchMIPSEL64,
	"ppc":      specs.ArchPPC,
	"ppc64":    specs.ArchPPC64,
	"ppc64le":  specs.ArchPPC64LE,
	"riscv64":  specs.ArchRISCV64,
	"s390x":    specs.ArchS390X,
}

// archAliases are other names profiles use for a GOARCH (the kernel's).
var archAliases = map[string][]string{
	"386":      {"x86", "i386", "i686"},
	"amd64":    {"x86_64"},
	"arm64":    {"aarch64"},
	"loong64":  {"loongarch64"},
	"mips64le": {"mipsel64"},
	"mipsle":   {"mipsel"},
}

func (h seccompHost) isArch(name string) bool {
	return name == h.goarch || slices.Contains(archAliases[h.goarch], name)
}

// Names the runtime (internal/runtime/linux/seccomp) accepts. SCMP_ACT_NOTIFY
// is valid runtime-spec but not implemented there, so it is refused here
// with the profile's name rather than at container start.
var (
	seccompActions = []specs.LinuxSeccompAction{
		specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
		specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog,
	}
	seccompArches = []specs.Arch{
		specs.ArchX86, specs.ArchX86_64, specs.ArchX32, specs.ArchARM, specs.ArchAARCH64,
		specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32, specs.ArchMIPSEL,
		specs.ArchMIPSEL64, specs.ArchMIPSEL64N32, specs.ArchPPC, specs.ArchPPC64,
		specs.ArchPPC64LE, specs.ArchS390, specs.ArchS390X, specs.ArchPARISC,
		specs.ArchPARISC64, specs.ArchRISCV64, specs.ArchLOONGARCH64, specs.ArchM68K,
		specs.ArchSH, specs.ArchSHEB,
	}
	seccompOperators = []specs.LinuxSeccompOperator{
		specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual,
	}
	seccompFlags = []specs.LinuxSeccompFlag{
		"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog,
		specs.LinuxSeccompFlagSpecAllow, specs.LinuxSeccompFlagWaitKillableRecv,
	}
)

func joinNames[T ~string](list []T) string {
	s := make([]string, len(list))
	for i, v := range list {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// seccompConfig returns the linux.seccomp of a container: none when
// privileged or unconfined, docker's default profile for "" (or
// "builtin"), else the profile file opts.Seccomp names, resolved against
// caps (the bounding set) and host.
func seccompConfig(opts Options, caps []string, host seccompHost) (*specs.LinuxSeccomp, []Warning, error) {
	switch {
	case opts.Seccomp == SeccompUnconfined:
		return nil, nil, nil
	case opts.Privileged:
		var warns []Warning
		if opts.Seccomp != "" && opts.Seccomp != SeccompBuiltin {
			warns = append(warns, Warning{Topic: "seccomp", Message: fmt.Sprintf(
				"seccomp profile %s ignored: privileged containers run without a seccomp filter", opts.Seccomp)})
		}
		return nil, warns, nil
	case opts.Seccomp == "" || opts.Seccomp == SeccompBuiltin:
		return defaultSeccompProfile().resolve(caps, host), nil, nil
	}
	p, err := loadSeccompProfile(opts.Seccomp)
	if err != nil {
		return nil, nil, err
	}
	return p.resolve(caps, host), nil, nil
}

// loadSeccompProfile reads and validates a profile file.
func loadSeccompProfile(name string) (*seccompProfile, error) {
	// Checked before opening, which would block on a FIFO.
	if st, err := os.Stat(name); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("seccomp profile %s: not a regular file", name)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxProfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	if len(data) > maxProfileSize {
		return nil, fmt.Errorf("seccomp profile %s: larger than %d MiB", name, maxProfileSize>>20)
	}
	p, err := parseSeccompProfile(data)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %s: %w", name, err)
	}
	return p, nil
}

// parseSeccompProfile decodes and validates a profile in docker's format.
// Unknown fields are errors: a misspelt "excludes" would otherwise grant
// what the profile meant to refuse.
func parseSeccompProfile(data []byte) (*seccompProfile, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("the file is empty; a profile is a JSON object with at least defaultAction")
	}
	var raw any
	if err := json.Unmarshal(data, &raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("invalid JSON at %s: %v", jsonPosition(data, se.Offset), err)
		}
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a JSON object with defaultAction and syscalls, got %s", jsonKind(raw))
	}
	if err := checkProfileFields(obj); err != nil {
		return nil, err
	}
	var p seccompProfile
	if err := json.Unmarshal(data, &p); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%s: want %s, got a JSON %s (at %s)", te.Field, jsonWant(te.Type), te.Value, jsonPosition(data, te.Offset))
		}
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// jsonWant describes what a JSON value decoded into t must be.
func jsonWant(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Bool:
		return "a boolean"
	}
	return "an object"
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "an object"
}

// jsonPosition turns a byte offset into "line L, column C".
func jsonPosition(data []byte, off int64) string {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return fmt.Sprintf("line %d, column %d", line, col)
}

// The fields of each object of the format, as encoding/json matches them
// (case-insensitively).
var (
	profileFields = []string{"defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls", "flags", "listenerPath", "listenerMetadata"}
	archMapFields = []string{"architecture", "subArchitectures"}
	syscallFields = []string{"name", "names", "action", "errnoRet", "args", "comment", "includes", "excludes"}
	argFields     = []string{"index", "value", "valueTwo", "op"}
	filterFields  = []string{"caps", "arches", "minKernel"}
)

func checkFields(where string, obj map[string]any, known []string) error {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.ContainsFunc(known, func(f string) bool { return strings.EqualFold(f, k) }) {
			field := k
			if where != "" {
				field = where + "." + k
			}
			return fmt.Errorf("%s: unknown field (known here: %s)", field, strings.Join(known, ", "))
		}
	}
	return nil
}

// field returns obj's value for name, matched as encoding/json does.
func field(obj map[string]any, name string) any {
	if v, ok := obj[name]; ok {
		return v
	}
	for k, v := range obj {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// objects calls fn for each object of the array obj[name] has; values of
// the wrong type are left to the typed decoding to report.
func objects(obj map[string]any, name, where string, fn func(string, map[string]any) error) error {
	arr, _ := field(obj, name).([]any)
	for i, v := range arr {
		if o, ok := v.(map[string]any); ok {
			if err := fn(fmt.Sprintf("%s[%d]", where, i), o); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkProfileFields(obj map[string]any) error {
	if err := checkFields("", obj, profileFields); err != nil {
		return err
	}
	if err := objects(obj, "archMap", "archMap", func(w string, o map[string]any) error {
		return checkFields(w, o, archMapFields)
	}); err != nil {
		return err
	}
	return objects(obj, "syscalls", "syscalls", func(w string, o map[string]any) error {
		if err := checkFields(w, o, syscallFields); err != nil {
			return err
		}
		if err := objects(o, "args", w+".args", func(w string, o map[string]any) error {
			return checkFields(w, o, argFields)
		}); err != nil {
			return err
		}
		for _, f := range []string{"includes", "excludes"} {
			if sub, ok := field(o, f).(map[string]any); ok {
				if err := checkFields(w+"."+f, sub, filterFields); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// checkAction validates an action and its errno, both named by their
// fields for the error message.
func checkAction(act specs.LinuxSeccompAction, errnoRet *uint, field, errnoField string) error {
	switch {
	case act == "":
		return fmt.Errorf("%s is missing (one of %s)", field, joinNames(seccompActions))
	case act == specs.ActNotify:
		return fmt.Errorf("%s: SCMP_ACT_NOTIFY is not supported by berth", field)
	case !slices.Contains(seccompActions, act):
		return fmt.Errorf("%s: unknown action %q (one of %s)", field, string(act), joinNames(seccompActions))
	}
	if errnoRet != nil {
		if act != specs.ActErrno && act != specs.ActTrace {
			return fmt.Errorf("%s is set, but %s is %s; only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take one", errnoField, field, string(act))
		}
		if *errnoRet > 0xffff {
			return fmt.Errorf("%s is %d; it must be at most 65535 (errno values are below 4096)", errnoField, *errnoRet)
		}
	}
	return nil
}

func checkArch(a specs.Arch, field string) error {
	if !slices.Contains(seccompArches, a) {
		return fmt.Errorf("%s: unknown architecture %q (one of %s)", field, string(a), joinNames(seccompArches))
	}
	return nil
}

func (f *seccompFilter) validate(field string) error {
	if f == nil {
		return nil
	}
	for i, c := range f.Caps {
		if _, ok := oci.CapabilityByName(c); !ok || c == "" {
			return fmt.Errorf("%s.caps[%d]: unknown capability %q", field, i, c)
		}
	}
	for i, a := range f.Arches {
		if a == "" {
			return fmt.Errorf("%s.arches[%d] is empty", field, i)
		}
	}
	if f.MinKernel != "" {
		if _, ok := parseKernelVersion(f.MinKernel, false); !ok {
			return fmt.Errorf("%s.minKernel: %q is not a kernel version such as \"4.8\" or \"5.10.2\"", field, f.MinKernel)
		}
	}
	return nil
}

// validate checks everything the runtime would refuse, so a bad profile
// fails with the profile's field names before a container exists.
func (p *seccompProfile) validate() error {
	if err := checkAction(p.DefaultAction, p.DefaultErrnoRet, "defaultAction", "defaultErrnoRet"); err != nil {
		return err
	}
	if p.ListenerPath != "" || p.ListenerMetadata != "" {
		return errors.New("listenerPath/listenerMetadata: seccomp notification (SCMP_ACT_NOTIFY) is not supported by berth")
	}
	if len(p.Architectures) > 0 && len(p.ArchMap) > 0 {
		return errors.New("architectures and archMap are both set; use one of them")
	}
	for i, a := range p.Architectures {
		if err := checkArch(a, fmt.Sprintf("architectures[%d]", i)); err != nil {
			return err
		}
	}
	for i, m := range p.ArchMap {
		if err := checkArch(m.Arch, fmt.Sprintf("archMap[%d].architecture", i)); err != nil {
			return err
		}
		for j, a := range m.SubArches {
			if err := checkArch(a, fmt.Sprintf("archMap[%d].subArchitectures[%d]", i, j)); err != nil {
				return err
			}
		}
	}
	for i, fl := range p.Flags {
		if !slices.Contains(seccompFlags, fl) {
			return fmt.Errorf("flags[%d]: unknown flag %q (one of %s)", i, string(fl), joinNames(seccompFlags))
		}
	}
	for i := range p.Syscalls {
		sc := &p.Syscalls[i]
		field := fmt.Sprintf("syscalls[%d]", i)
		switch {
		case sc.Name != "" && len(sc.Names) > 0:
			return fmt.Errorf("%s: both name and names are set; use names", field)
		case sc.Name == "" && len(sc.Names) == 0:
			return fmt.Errorf("%s: names is missing or empty", field)
		}
		for j, n := range sc.Names {
			if strings.TrimSpace(n) == "" {
				return fmt.Errorf("%s.names[%d] is empty", field, j)
			}
		}
		if err := checkAction(sc.Action, sc.ErrnoRet, field+".action", field+".errnoRet"); err != nil {
			return err
		}
		for j, a := range sc.Args {
			af := fmt.Sprintf("%s.args[%d]", field, j)
			if a.Index >= 6 {
				return fmt.Errorf("%s.index is %d; system call arguments are numbered 0 to 5", af, a.Index)
			}
			if a.Op == "" {
				return fmt.Errorf("%s.op is missing (one of %s)", af, joinNames(seccompOperators))
			}
			if !slices.Contains(seccompOperators, a.Op) {
				return fmt.Errorf("%s.op: unknown operator %q (one of %s)", af, string(a.Op), joinNames(seccompOperators))
			}
		}
		if err := sc.Includes.validate(field + ".includes"); err != nil {
			return err
		}
		if err := sc.Excludes.validate(field + ".excludes"); err != nil {
			return err
		}
	}
	return nil
}

// hasCap reports whether the canonical capability list caps holds name
// (any case, CAP_ optional).
func hasCap(caps []string, name string) bool {
	n, ok := oci.CapabilityByName(name)
	return ok && slices.Contains(caps, oci.CapabilityName(n))
}

// applies reports whether an entry is part of the profile for a container
// with bounding set caps on host, following docker: every include must
// hold (all its caps, one of its arches, the kernel at least minKernel)
// and no exclude may (any of its caps, one of its arches, the kernel at
// least minKernel). An unknown kernel version satisfies no minKernel.
func (sc *seccompSyscall) applies(caps []string, host seccompHost) bool {
	kernelAtLeast := func(v string) bool {
		want, _ := parseKernelVersion(v, false)
		return host.kernel != nil && host.kernel.atLeast(want)
	}
	if ex := sc.Excludes; ex != nil {
		if slices.ContainsFunc(ex.Arches, host.isArch) ||
			slices.ContainsFunc(ex.Caps, func(c string) bool { return hasCap(caps, c) }) ||
			(ex.MinKernel != "" && kernelAtLeast(ex.MinKernel)) {
			return false
		}
	}
	if in := sc.Includes; in != nil {
		if len(in.Arches) > 0 && !slices.ContainsFunc(in.Arches, host.isArch) {
			return false
		}
		for _, c := range in.Caps {
			if !hasCap(caps, c) {
				return false
			}
		}
		if in.MinKernel != "" && !kernelAtLeast(in.MinKernel) {
			return false
		}
	}
	return true
}

// resolve turns a validated profile into the runtime-spec linux.seccomp of
// a container with bounding set caps on host.
func (p *seccompProfile) resolve(caps []string, host seccompHost) *specs.LinuxSeccomp {
	out := &specs.LinuxSeccomp{
		DefaultAction:   p.DefaultAction,
		DefaultErrnoRet: clonePtr(p.DefaultErrnoRet),
		Architectures:   slices.Clone(p.Architectures),
		Flags:           slices.Clone(p.Flags),
	}
	if native, ok := nativeSeccompArch[host.goarch]; ok && len(p.ArchMap) > 0 {
		for _, m := range p.ArchMap {
			if m.Arch == native {
				out.Architectures = append(append(out.Architectures, m.Arch), m.SubArches...)
				break
			}
		}
	}
	for i := range p.Syscalls {
		sc := &p.Syscalls[i]
		if !sc.applies(caps, host) {
			continue
		}
		names := sc.Names
		if sc.Name != "" {
			names = []string{sc.Name}
		}
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{
			Names:    slices.Clone(names),
			Action:   sc.Action,
			ErrnoRet: clonePtr(sc.ErrnoRet),
			Args:     slices.Clone(sc.Args),
		})
	}
	return out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
