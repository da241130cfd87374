package remote

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Platform is an OS, architecture and optional variant, normalised (see
// ParsePlatform).
type Platform struct {
	OS, Architecture, Variant string
}

// String returns "os/arch" or "os/arch/variant".
func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// DefaultPlatform is the platform this program runs on (arm is taken as
// v7).
func DefaultPlatform() Platform {
	return Normalize(Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH})
}

// ParsePlatform parses "os/arch[/variant]" (or "arch" alone, meaning this
// OS); "" is DefaultPlatform. Names are normalised: x86_64 → amd64,
// aarch64 → arm64 (variant v8 dropped: arm64 and arm64/v8 are the same),
// armhf → arm/v7, armel → arm/v6, i386/i686 → 386, arm without a variant
// → arm/v7.
func ParsePlatform(s string) (Platform, error) {
	if s == "" {
		return DefaultPlatform(), nil
	}
	parts := strings.Split(strings.ToLower(s), "/")
	var p Platform
	switch len(parts) {
	case 1:
		p = Platform{OS: runtime.GOOS, Architecture: parts[0]}
	case 2:
		p = Platform{OS: parts[0], Architecture: parts[1]}
	case 3:
		p = Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	default:
		return Platform{}, &Error{Op: "parse platform", Ref: fmt.Sprintf("%q", s), Kind: ErrInvalid,
			Msg: "want os/arch[/variant]", Hint: `e.g. "linux/amd64" or "linux/arm64/v8"`}
	}
	for _, x := range []string{p.OS, p.Architecture} {
		if x == "" {
			return Platform{}, &Error{Op: "parse platform", Ref: fmt.Sprintf("%q", s), Kind: ErrInvalid,
				Msg: "empty os or architecture", Hint: `e.g. "linux/amd64"`}
		}
	}
	return Normalize(p), nil
}

// Normalize returns p with architecture aliases and default variants
// resolved.
func Normalize(p Platform) Platform {
	p.OS = strings.ToLower(p.OS)
	p.Architecture = strings.ToLower(p.Architecture)
	p.Variant = strings.ToLower(p.Variant)
	if p.OS == "macos" {
		p.OS = "darwin"
	}
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64" // its v1 variant is dropped below
	case "i386", "i486", "i586", "i686", "x86":
		p.Architecture = "386"
	case "aarch64", "arm64":
		p.Architecture = "arm64"
		if p.Variant == "8" || p.Variant == "v8" {
			p.Variant = ""
		}
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "arm":
		switch p.Variant {
		case "", "7":
			p.Variant = "v7"
		case "5", "6", "8":
			p.Variant = "v" + p.Variant
		}
	}
	if p.Architecture == "amd64" && p.Variant == "v1" {
		p.Variant = ""
	}
	return p
}

func fromOCI(p *ocispec.Platform) Platform {
	if p == nil {
		return Platform{}
	}
	return Normalize(Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})
}

// ParseIndex decodes an image index (OCI or Docker manifest list).
func ParseIndex(data []byte) (ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return idx, &Error{Op: "parse index", Kind: ErrInvalid, Msg: "not valid JSON", Err: err}
	}
	if idx.SchemaVersion != 2 {
		return idx, &Error{Op: "parse index", Kind: ErrInvalid, Msg: fmt.Sprintf("schemaVersion %d, want 2", idx.SchemaVersion)}
	}
	return idx, nil
}

// SelectPlatform picks the manifest of index for p: an exact match
// (normalised), else for arm the closest lower variant (v7 runs v6 and v5),
// else, when p has no variant, the first entry for p's OS and architecture.
// Entries without a platform or for "unknown" (attestations) are never
// chosen. The error (ErrNotFound) lists the platforms available.
func SelectPlatform(index ocispec.Index, p Platform) (ocispec.Descriptor, error) {
	p = Normalize(p)
	best, bestRank := -1, 1<<30
	var avail []string
	for i, m := range index.Manifests {
		if m.Platform == nil || m.Platform.OS == "unknown" || m.Platform.Architecture == "unknown" {
			continue
		}
		if !IsManifestMediaType(m.MediaType) && !IsIndexMediaType(m.MediaType) {
			continue
		}
		mp := fromOCI(m.Platform)
		avail = append(avail, mp.String())
		if mp.OS != p.OS || mp.Architecture != p.Architecture {
			continue
		}
		rank := -1
		switch {
		case mp.Variant == p.Variant:
			rank = 0
		case p.Architecture == "arm" && len(mp.Variant) == 2 && len(p.Variant) == 2 && mp.Variant < p.Variant:
			rank = int(p.Variant[1] - mp.Variant[1]) // closer lower variant first
		case p.Variant == "":
			rank = 100
		}
		if rank >= 0 && rank < bestRank {
			best, bestRank = i, rank
		}
	}
	if best < 0 {
		sort.Strings(avail)
		list := strings.Join(avail, ", ")
		if list == "" {
			list = "none"
		}
		return ocispec.Descriptor{}, &Error{Op: "select platform", Ref: p.String(), Kind: ErrNotFound,
			Msg:  "the image has no manifest for this platform (available: " + list + ")",
			Hint: "choose one of the available platforms with --platform"}
	}
	return index.Manifests[best], nil
}
