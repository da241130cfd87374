package remote

import (
	"context"
	"strings"
)

// A request's own registry credentials: what an API client sends with a
// pull or push (docker's X-Registry-Auth, the CRI's AuthConfig), used for
// that request before the server's.

type requestCredsKey struct{}

type requestCreds struct{ server, username, secret string }

// WithRequestCredentials carries a request's credentials for the
// registry server names ("" or a host or URL as docker writes it:
// "https://index.docker.io/v1/"); username "" with a secret is an
// identity token.
func WithRequestCredentials(ctx context.Context, server, username, secret string) context.Context {
	return context.WithValue(ctx, requestCredsKey{}, requestCreds{server, username, secret})
}

// RequestCredentials are a registry client's credentials: a request's
// own (WithRequestCredentials) when they name the registry or none, else
// Fallback's.
type RequestCredentials struct{ Fallback Credentials }

// Get implements Credentials.
func (c RequestCredentials) Get(ctx context.Context, registry string) (string, string, error) {
	if a, ok := ctx.Value(requestCredsKey{}).(requestCreds); ok && ServerMatches(a.server, registry) {
		return a.username, a.secret, nil
	}
	if c.Fallback == nil {
		return "", "", nil
	}
	return c.Fallback.Get(ctx, registry)
}

// ServerMatches says whether a credential's server address ("" matches
// any, a host, or a URL the way docker writes it) is registry; Docker
// Hub's names all mean registry-1.docker.io.
func ServerMatches(server, registry string) bool {
	server = strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
	if i := strings.IndexByte(server, '/'); i >= 0 {
		server = server[:i]
	}
	return server == "" || server == registry ||
		(server == "index.docker.io" || server == "docker.io") && registry == "registry-1.docker.io"
}
