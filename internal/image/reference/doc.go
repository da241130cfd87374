// Package reference parses, normalises and prints image references ("busybox",
// "ghcr.io/o/r:tag@sha256:…") and content digests, with Docker's semantics.
//
// # Grammar
//
//	reference  := name [ ":" tag ] [ "@" digest ]
//	name       := [ registry "/" ] path
//	registry   := host [ ":" port ]
//	host       := domain-name | "[" IPv6-address "]"   (an IPv4 address reads as a domain-name)
//	domain-name:= label ( "." label )*        label: [A-Za-z0-9] | [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]
//	port       := 1-65535, decimal
//	path       := component ( "/" component )*
//	component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//	tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//	digest     := "sha256:" 64 lower-case hex | "sha512:" 128 lower-case hex
//
// The first "/"-separated part of a name is a registry only when it contains
// a '.' or a ':' or is "localhost" and a path follows it; otherwise the whole
// name is a path on Docker Hub. "registry/path" after normalisation is at
// most 255 characters long. A 64-character lower-case hex string on its own
// is refused: Docker treats it as an image ID, never as a name.
//
// # Normalisation (as docker does it)
//
//   - no registry: docker.io ("busybox" is docker.io/library/busybox:latest);
//   - "index.docker.io" is docker.io;
//   - on docker.io a one-component path gets "library/" in front;
//   - no tag and no digest: the tag "latest". A reference with a digest and
//     no tag keeps no tag; one with both keeps both (docker then pulls by
//     the digest alone: WithoutTag gives "name@digest").
//
// Registries are kept as written (host names are not lower-cased, as in
// docker); only the path must be lower-case.
//
// # Invariants
//
//   - A Reference and a Digest are immutable values: every method returns a
//     new value and never changes the receiver, so they can be shared between
//     goroutines and used as map keys. Two References are equal (==)
//     exactly when their String()s are: Parse("busybox") and
//     Parse("docker.io/library/busybox:latest") are equal. (UnmarshalText,
//     for JSON, replaces the whole value, like an assignment.)
//   - Every non-zero Reference has a registry, a repository and a tag or a
//     digest (or both), each valid by the grammar above.
//   - String() is the canonical form and round-trips: Parse(r.String()) == r.
//     Familiar() (docker's short form) round-trips too: Parse(r.Familiar()) == r.
//   - Every non-zero Digest has a supported algorithm and exactly the right
//     number of lower-case hex characters; ParseDigest(d.String()) == d.
//
// # Errors
//
// Every error for bad input wraps ErrInvalid (test with errors.Is), quotes
// the input and says what is wrong and, where it can, how to fix it:
//
//	reference "Busybox": repository name must be lowercase (try "busybox")
//
// Errors about a digest also wrap ErrInvalidDigest.
package reference
