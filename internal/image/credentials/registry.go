package credentials

import (
	"fmt"
	"strings"

	"github.com/berth-dev/berth/internal/image/reference"
)

// dockerHubServerURL is the key docker's config.json and docker's
// credential helpers use for Docker Hub.
const dockerHubServerURL = "https://index.docker.io/v1/"

// dockerHubAliases are host names that all mean Docker Hub.
var dockerHubAliases = []string{
	reference.DefaultRegistry, // docker.io
	"index.docker.io",
	"registry-1.docker.io",
}

// NormalizeRegistry turns a registry key as found in a config file or typed
// by a user ("https://index.docker.io/v1/", "http://host:5000/v2/",
// "host/") into the registry host[:port] that image references use
// ("docker.io", "host:5000"). It strips a URL scheme and any path, and maps
// every Docker Hub alias to "docker.io". Host names keep their case (as in
// package reference); compare the results with [SameRegistry].
func NormalizeRegistry(key string) string {
	s := strings.TrimSpace(key)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	for _, alias := range dockerHubAliases {
		if strings.EqualFold(s, alias) {
			return reference.DefaultRegistry
		}
	}
	return s
}

// SameRegistry reports whether two registry keys, in any of the forms
// NormalizeRegistry accepts, name the same registry. Host names compare
// without regard to case.
func SameRegistry(a, b string) bool {
	return strings.EqualFold(NormalizeRegistry(a), NormalizeRegistry(b))
}

// ServerURL returns the server address docker uses for a registry in its
// config.json and with credential helpers: "https://index.docker.io/v1/"
// for Docker Hub, the host[:port] otherwise.
func ServerURL(registry string) string {
	r := NormalizeRegistry(registry)
	if r == reference.DefaultRegistry {
		return dockerHubServerURL
	}
	return r
}

// checkRegistry normalises a registry argument and refuses ones that cannot
// be a host[:port].
func checkRegistry(registry string) (string, error) {
	r := NormalizeRegistry(registry)
	if r == "" {
		return "", fmt.Errorf("credentials: empty registry name: give a registry host such as \"docker.io\" or \"registry.example.com:5000\"")
	}
	for _, c := range r {
		if c <= ' ' || c == 0x7f || c == '"' || c == '\\' {
			return "", fmt.Errorf("credentials: invalid registry name %q: a registry is a host[:port] such as \"registry.example.com:5000\"", registry)
		}
	}
	return r, nil
}
