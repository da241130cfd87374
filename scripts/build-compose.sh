#!/usr/bin/env bash
# build-compose.sh: build docker compose (the release pinned by the tool
# module tools/compose) into the cache once, and print the binary's path
# on stdout; nothing else goes to stdout, and the build's own output is
# shown only when it fails.
#
# The binary is rebuilt only when tools/compose/go.mod, go.sum, the Go
# version or BUILD_REV change; concurrent callers wait for one build.
#
# Environment:
#   COMPOSE_CACHE   build cache (default <repo>/.cache/compose)
set -euo pipefail
BUILD_REV=1 # bump to force a rebuild after changing the build command below
repo=$(cd "$(dirname "$0")/.." && pwd)
tooldir=$repo/tools/compose
cache=${COMPOSE_CACHE:-$repo/.cache/compose}

die() {
	echo "build-compose: $*" >&2
	exit 1
}
command -v go >/dev/null || die "go is not on PATH (Go >= 1.26 builds compose $(grep -m1 'docker/compose/v5 ' "$tooldir/go.mod" | awk '{print $2}'))"

# Its own module: no workspace, no go.mod updates (the committed go.sum
# is what CI builds), no cgo (compose needs none).
export GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
version=$(cd "$tooldir" && go list -m -f '{{.Version}}' github.com/docker/compose/v5) ||
	die "cannot read compose's version from $tooldir/go.mod"
key=$(
	{
		echo "rev $BUILD_REV"
		go version
		cat "$tooldir/go.mod" "$tooldir/go.sum"
	} | sha256sum | cut -c1-16
)
bin=$cache/$key/docker-compose
if [[ ! -x $bin ]]; then
	mkdir -p "$cache"
	exec 9>"$cache/.lock"
	flock 9
	if [[ ! -x $bin ]]; then
		# One line, and only on a terminal: in a pipe the path is all.
		[ -t 2 ] && echo "build-compose: building docker compose $version into $cache (once; about 2 minutes on 2 cores)" >&2
		tmp=$(mktemp -d "$cache/build.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		# compose's own Makefile sets the version the same way.
		if ! (cd "$tooldir" && go build -trimpath -ldflags "-w -X github.com/docker/compose/v5/internal.Version=$version" \
			-o "$tmp/docker-compose" github.com/docker/compose/v5/cmd) >"$tmp/log" 2>&1; then
			cat "$tmp/log" >&2
			die "building compose $version failed"
		fi
		# Older keys' binaries go: one build is kept.
		find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "build.*" -exec rm -rf {} +
		mkdir -p "$cache/$key"
		mv "$tmp/docker-compose" "$bin"
	fi
fi
echo "$bin"
