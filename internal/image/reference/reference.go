package reference

import (
	"fmt"
	"strings"
)

// Docker's defaults.
const (
	// DefaultRegistry is the registry of names without one (Docker Hub).
	DefaultRegistry = "docker.io"
	// DefaultTag is the tag of references with neither tag nor digest.
	DefaultTag = "latest"
	// officialPrefix is the namespace of Docker Hub's one-component names.
	officialPrefix = "library/"
	// legacyRegistry is an old name of Docker Hub, read as DefaultRegistry.
	legacyRegistry = "index.docker.io"
)

// Reference is a normalised image reference: a registry, a repository on
// it, and a tag, a digest or both. The zero Reference is "no reference";
// every other value comes from Parse (or a With method on one) and is valid.
// References are immutable and comparable with ==.
type Reference struct {
	registry   string
	repository string
	tag        string
	digest     Digest
}

// Parse parses and normalises an image reference as docker does (see the
// package documentation): "busybox" is docker.io/library/busybox:latest.
// Errors wrap ErrInvalid, quote s and say what to change.
func Parse(s string) (Reference, error) {
	r, why := parse(s)
	if why != "" {
		_, badDigest := strings.CutPrefix(why, digestFault)
		return Reference{}, &invalidError{kind: "reference", input: s, reason: why, digest: badDigest}
	}
	return r, nil
}

// MustParse is Parse for constants known to be valid; it panics on error.
func MustParse(s string) Reference {
	r, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return r
}

// digestFault begins parse's reasons that are about the digest.
const digestFault = "digest "

// parse returns the reference or, if s is not valid, why not.
func parse(s string) (Reference, string) {
	if s == "" {
		return Reference{}, `empty reference: give an image name such as "busybox" or "busybox:1.36"`
	}
	if isImageID(s) {
		return Reference{}, "a 64-character hex string is an image ID, not a repository name (to pull by digest write name@sha256:<hex>)"
	}

	if _, rest, ok := strings.Cut(s, "://"); ok && rest != "" {
		return Reference{}, fmt.Sprintf("a reference has no URL scheme: write %q", rest)
	}

	// name[:tag][@digest], split from the right: a digest cannot hold '@',
	// a tag cannot hold '/'.
	rest := s
	var dg Digest
	if at := strings.IndexByte(s, '@'); at >= 0 {
		ds := s[at+1:]
		if ds == "" {
			return Reference{}, digestFault + "missing after '@': remove the '@' or write a digest such as sha256:<64 hex>"
		}
		var why string
		if dg, why = parseDigest(ds); why != "" {
			return Reference{}, fmt.Sprintf(digestFault+"%s: %s", quote(ds), why)
		}
		rest = s[:at]
	}
	tag, hasTag := "", false
	if c := strings.LastIndexByte(rest, ':'); c >= 0 && c > strings.LastIndexByte(rest, '/') {
		tag, hasTag, rest = rest[c+1:], true, rest[:c]
	}
	name := rest
	if name == "" {
		return Reference{}, "missing image name: a reference starts with a name such as \"busybox\""
	}

	// registry/path, when the first component looks like a host.
	registry, path := "", name
	if i := strings.IndexByte(name, '/'); i >= 0 && looksLikeRegistry(name[:i]) {
		registry, path = name[:i], name[i+1:]
		if why := checkRegistry(registry); why != "" {
			return Reference{}, fmt.Sprintf("registry %q %s", registry, why)
		}
		if path == "" {
			return Reference{}, fmt.Sprintf("missing repository name after the registry %q", registry)
		}
	}
	if why := checkPath(path); why != "" {
		if why == "repository name must be lowercase" {
			start := len(name) - len(path)
			lower := s[:start] + strings.ToLower(path) + s[len(name):]
			if _, bad := parse(lower); bad == "" {
				why += fmt.Sprintf(" (try %q)", lower)
			}
		}
		return Reference{}, why
	}
	if hasTag {
		if why := checkTag(tag); why != "" {
			return Reference{}, why
		}
	}

	switch registry {
	case "", legacyRegistry:
		registry = DefaultRegistry
	}
	if registry == DefaultRegistry && !strings.Contains(path, "/") {
		path = officialPrefix + path
	}
	if n := len(registry) + 1 + len(path); n > MaxNameLength {
		return Reference{}, fmt.Sprintf("the name %s is %d characters long; the limit is %d", quote(registry+"/"+path), n, MaxNameLength)
	}
	if !hasTag && dg.IsZero() {
		tag = DefaultTag
	}
	return Reference{registry: registry, repository: path, tag: tag, digest: dg}, ""
}

// IsZero reports whether r is the zero Reference.
func (r Reference) IsZero() bool { return r.registry == "" }

// Registry returns the registry host[:port], e.g. "docker.io",
// "localhost:5000", "[::1]:5000".
func (r Reference) Registry() string { return r.registry }

// Repository returns the path on the registry, e.g. "library/busybox".
func (r Reference) Repository() string { return r.repository }

// Tag returns the tag; "" when r has only a digest.
func (r Reference) Tag() string { return r.tag }

// Digest returns the digest; the zero Digest when r has only a tag.
func (r Reference) Digest() Digest { return r.digest }

// Name returns "registry/repository", e.g. "docker.io/library/busybox".
func (r Reference) Name() string {
	if r.IsZero() {
		return ""
	}
	return r.registry + "/" + r.repository
}

// String returns the canonical form, "registry/repository[:tag][@digest]",
// e.g. "docker.io/library/busybox:latest"; "" for the zero Reference.
// Parse(r.String()) == r.
func (r Reference) String() string { return r.Name() + r.suffix() }

func (r Reference) suffix() string {
	s := ""
	if r.tag != "" {
		s = ":" + r.tag
	}
	if !r.digest.IsZero() {
		s += "@" + r.digest.String()
	}
	return s
}

// FamiliarName returns the name as docker shows it: on docker.io without
// the registry and, for one-component official images, without "library/"
// ("busybox", "user/app"); other registries' names whole. A docker.io name
// whose first component would read as a registry ("docker.io/a.b/c") keeps
// "docker.io/", so that the familiar form parses back to the same name.
func (r Reference) FamiliarName() string {
	if r.registry != DefaultRegistry {
		return r.Name()
	}
	if rest, ok := strings.CutPrefix(r.repository, officialPrefix); ok && !strings.Contains(rest, "/") {
		return rest
	}
	if first, _, _ := strings.Cut(r.repository, "/"); looksLikeRegistry(first) {
		return r.Name()
	}
	return r.repository
}

// Familiar returns docker's short form: FamiliarName with the tag and
// digest, e.g. "busybox:latest", "user/app:1", "ghcr.io/o/r:t@sha256:…".
// Parse(r.Familiar()) == r.
func (r Reference) Familiar() string { return r.FamiliarName() + r.suffix() }

// WithTag returns r with the tag set to tag (its digest, if any, kept).
func (r Reference) WithTag(tag string) (Reference, error) {
	if r.IsZero() {
		return Reference{}, invalid("tag", tag, "cannot be set on the zero Reference")
	}
	if why := checkTag(tag); why != "" {
		return Reference{}, invalid("tag", tag, why)
	}
	r.tag = tag
	return r, nil
}

// WithDigest returns r with the digest set to d (its tag, if any, kept).
func (r Reference) WithDigest(d Digest) (Reference, error) {
	if r.IsZero() {
		return Reference{}, &invalidError{kind: "digest", input: d.String(), reason: "cannot be set on the zero Reference", digest: true}
	}
	if d.IsZero() {
		return Reference{}, &invalidError{kind: "reference", input: r.String(), reason: "WithDigest: the digest is zero", digest: true}
	}
	r.digest = d
	return r, nil
}

// WithoutTag returns r without its tag, as "name@digest" (docker's
// RepoDigests form). r must have a digest: a reference has a tag, a digest
// or both.
func (r Reference) WithoutTag() (Reference, error) {
	if r.digest.IsZero() {
		return Reference{}, invalid("reference", r.String(), "has no digest, so it cannot lose its tag (use WithDigest first)")
	}
	r.tag = ""
	return r, nil
}

// IsLoopbackRegistry reports whether r's registry is localhost, in
// 127.0.0.0/8 or ::1, with or without a port (see IsLoopback).
func (r Reference) IsLoopbackRegistry() bool { return IsLoopback(r.registry) }

// MarshalText returns r.String(), so a Reference can be a JSON field.
func (r Reference) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText sets r to Parse(text); empty text sets the zero Reference,
// so that what MarshalText writes always reads back.
func (r *Reference) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*r = Reference{}
		return nil
	}
	p, err := Parse(string(text))
	if err != nil {
		return err
	}
	*r = p
	return nil
}
