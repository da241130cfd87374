// Package remote is a client for the OCI distribution API (the registry v2
// HTTP API): it resolves tags, fetches and verifies manifests, streams blobs
// with transparent resumption, and pushes blobs (monolithic, chunked or by
// cross-repository mount) and manifests.
//
// # Transport
//
//   - HTTPS is the default. Plain HTTP is used only for registries that are
//     loopback (reference.IsLoopback: localhost, 127.0.0.0/8, ::1) or marked
//     Insecure in their RegistryConfig, and only after an HTTPS attempt was
//     answered in plain HTTP (as docker does); the scheme that worked is
//     remembered per host for the life of the Client. A mirror given as a URL
//     ("http://host:port") uses the scheme written.
//   - "docker.io" is reached at registry-1.docker.io.
//   - Credentials (Basic, or the Basic request to a token realm) are never
//     sent over plain HTTP to a non-loopback host unless it is Insecure, and
//     Authorization is never carried across a redirect to another host (blob
//     downloads redirected to storage get the redirect without it).
//
// # Authentication
//
// Requests go out anonymously until a registry answers 401; its
// WWW-Authenticate challenge (or, if it has none, that of GET /v2/) decides:
// Basic sends the Credentials' username and secret on every later request
// to that host; Bearer fetches a token from the realm for the scopes the
// operation needs ("repository:NAME:pull", plus ",push" for pushes) and
// caches it per (host, scopes) until its expires_in (60 s when absent). A 401
// after a token was used (a new scope, error="insufficient_scope") fetches
// one more token with the scopes the challenge names added; a second failure
// is ErrUnauthorized. Credentials are looked up with the registry name of the
// reference ("docker.io", "127.0.0.1:5000"), or a mirror's host[:port].
// A credential with username "" and a non-empty secret is an identity
// (refresh) token: it is exchanged at the realm with an OAuth2
// grant_type=refresh_token POST; it cannot be used with Basic.
//
// # Pulls and mirrors
//
// Pull operations (Resolve, FetchManifest, FetchBlob, ListTags) on a
// registry with mirrors try each mirror in order with the same repository
// path (library/ kept for docker.io), then the upstream; any mirror failure
// except the caller's context ending (network, timeout, 5xx, 404, 401, bad
// content) moves to the next. Pushes go to the upstream only.
//
// # Invariants
//
//   - Content returned by Resolve, FetchManifest and ReadBlob/VerifyReader
//     has been checked against its digest and size; nothing unverified is
//     returned by those. A manifest over MaxManifestSize (4 MiB) is refused.
//   - FetchBlob does NOT verify the digest: it may start at an offset, and the
//     caller, who has the earlier bytes, hashes the whole. It does guarantee
//     it never yields more than desc.Size bytes, nor bytes from a different
//     offset than asked: a resumed stream continues exactly where the
//     previous one stopped (Range requests, or skipping when a server ignores
//     Range). Use VerifyReader on a stream from offset 0 to verify.
//   - Requests with a body that cannot be replayed are not retried.
//   - A Client is safe for concurrent use.
//
// # Errors
//
// Errors wrap one of ErrNotFound, ErrUnauthorized, ErrInvalid and
// ErrUnavailable (test with errors.Is) and read like
//
//	pull 127.0.0.1:5000/app:v1: manifest unknown: registry says MANIFEST_UNKNOWN "manifest unknown" (check the tag exists: GET /v2/app/tags/list)
//
// naming the operation, the reference or digest, what the registry said, and
// what to do. *Error gives the parts.
package remote
