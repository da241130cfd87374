package reference

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of the grammar.
const (
	// MaxNameLength is the longest "registry/repository".
	MaxNameLength = 255
	// MaxTagLength is the longest tag.
	MaxTagLength = 128
)

// The checks below return "" for valid input, otherwise the reason, phrased
// to follow "<kind> <quoted input>: ".

// charAt describes the character (rune, so that non-ASCII input reads well)
// at byte offset i of s.
func charAt(s string, i int) string {
	r, _ := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError {
		return fmt.Sprintf("byte %#02x", s[i])
	}
	return strconv.QuoteRune(r)
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isSeparator(c byte) bool { return c == '.' || c == '_' || c == '-' }

func hasUpperASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// checkPath checks a repository path: lower-case components separated by
// single slashes.
func checkPath(path string) string {
	if path == "" {
		return "missing repository name"
	}
	if hasUpperASCII(path) {
		return "repository name must be lowercase"
	}
	if path[0] == '/' {
		return "repository path starts with '/': remove it"
	}
	if path[len(path)-1] == '/' {
		return "repository path ends with '/': remove it"
	}
	for c := range strings.SplitSeq(path, "/") {
		if c == "" {
			return "repository path has an empty component (\"//\"): remove the extra '/'"
		}
		if why := checkComponent(c); why != "" {
			return why
		}
	}
	return ""
}

// checkComponent checks one path component against
// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.
func checkComponent(c string) string {
	const rule = "; components use a-z and 0-9, separated by one '.', one or two '_', or any number of '-'"
	for i := 0; i < len(c); {
		switch b := c[i]; {
		case isLowerAlnum(b):
			i++
		case isSeparator(b):
			j := i
			for j < len(c) && isSeparator(c[j]) {
				j++
			}
			sep := c[i:j]
			switch {
			case i == 0:
				return fmt.Sprintf("path component %q starts with %q: it must start with a lowercase letter or digit", c, sep)
			case j == len(c):
				return fmt.Sprintf("path component %q ends with %q: it must end with a lowercase letter or digit", c, sep)
			case !(sep == "." || sep == "_" || sep == "__" || strings.Trim(sep, "-") == ""):
				return fmt.Sprintf("path component %q has the separator %q"+rule, c, sep)
			}
			i = j
		default:
			why := fmt.Sprintf("path component %q contains %s"+rule, c, charAt(c, i))
			switch b {
			case ':':
				why += " (a tag goes at the end: name:tag)"
			case '[', ']':
				why += " (an IPv6 registry is written [address]:port/repository)"
			}
			return why
		}
	}
	return ""
}

// checkTag checks a tag against [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func checkTag(tag string) string {
	if tag == "" {
		return "empty tag: remove the ':' or write a tag after it, such as \"latest\""
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Sprintf("tag %q contains %s: tags use A-Z, a-z, 0-9, '_', '.' and '-'", tag, charAt(tag, i))
		}
	}
	if tag[0] == '.' || tag[0] == '-' {
		return fmt.Sprintf("tag %q starts with %q: a tag must start with a letter, digit or '_'", tag, tag[0])
	}
	if len(tag) > MaxTagLength {
		return fmt.Sprintf("tag is %d characters long; the limit is %d", len(tag), MaxTagLength)
	}
	return ""
}

// looksLikeRegistry reports whether the first component of a name is taken
// for a registry (when a path follows it), as docker decides.
func looksLikeRegistry(first string) bool {
	return strings.ContainsAny(first, ".:") || first == "localhost"
}

// checkRegistry checks host[:port], where host is a domain name, an IPv4
// address (which reads as one) or a bracketed IPv6 address. Its reasons are
// predicates, to follow "registry <quoted registry> ".
func checkRegistry(r string) string {
	if r == "" {
		return "is empty"
	}
	if _, rest, ok := strings.Cut(r, "://"); ok {
		host, _, _ := strings.Cut(rest, "/")
		return fmt.Sprintf("has a URL scheme: write only host[:port], such as %q", host)
	}
	port, hasPort := "", false
	if r[0] == '[' {
		end := strings.IndexByte(r, ']')
		if end < 0 {
			return "has an IPv6 address without its closing ']'"
		}
		ip := r[1:end]
		a, err := netip.ParseAddr(ip)
		if strings.Trim(ip, "0123456789abcdefABCDEF:") != "" || err != nil || !a.Is6() {
			return fmt.Sprintf("has %q in brackets, which is not an IPv6 address", ip)
		}
		if rest := r[end+1:]; rest != "" {
			if rest[0] != ':' {
				return fmt.Sprintf("has %q after the IPv6 address (want [address]:port)", rest)
			}
			port, hasPort = rest[1:], true
		}
	} else {
		if strings.Count(r, ":") > 1 {
			return "has more than one ':' (an IPv6 address goes in brackets: [::1]:5000)"
		}
		var host string
		host, port, hasPort = strings.Cut(r, ":")
		if why := checkHost(host); why != "" {
			return why
		}
	}
	if hasPort {
		return checkPort(port)
	}
	return ""
}

// checkHost checks a domain name: labels of letters, digits and '-' (not at
// either end) separated by single dots.
func checkHost(host string) string {
	if host == "" {
		return "has no host name before the ':'"
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" {
			return "has an empty label in its host name (\"..\", or a '.' at either end)"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Sprintf("contains %s: host names use letters, digits, '-' and '.'", charAt(label, i))
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Sprintf("has the host label %q, which starts or ends with '-'", label)
		}
	}
	return ""
}

func checkPort(port string) string {
	if port == "" {
		return "has an empty port: remove the ':' or write a port after it"
	}
	if strings.Trim(port, "0123456789") != "" {
		return fmt.Sprintf("has the port %q, which is not a number (a tag goes at the end: name:tag)", port)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Sprintf("has the port %s, out of range 1-65535", port)
	}
	return ""
}

// isImageID reports whether s is 64 lower-case hex characters: docker
// refuses such a name (it is an image ID).
func isImageID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// IsLoopback reports whether a registry ("host" or "host:port") is on the
// loopback interface: "localhost", 127.0.0.0/8 or ::1 (bracketed). It looks
// at the text only and never resolves names. Docker talks plain HTTP to such
// registries by default.
func IsLoopback(registry string) bool {
	host := registry
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return false
		}
		host = host[1:end]
	} else if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}

// ParseRegistry validates a registry host[:port], as accepted in a reference
// or by "login", and normalises "index.docker.io" to "docker.io".
func ParseRegistry(s string) (string, error) {
	if why := checkRegistry(s); why != "" {
		return "", &invalidError{kind: "registry", input: s, reason: why, predicate: true}
	}
	if s == legacyRegistry {
		return DefaultRegistry, nil
	}
	return s, nil
}
