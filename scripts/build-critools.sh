#!/usr/bin/env bash
# build-critools.sh: builds crictl and critest from tools/critools into
# .cache/critools/bin (or $CRITOOLS_CACHE/bin), once per go.mod/go.sum/Go
# version, and prints that directory. Quiet unless it builds.
set -euo pipefail
BUILD_REV=1 # bump to force a rebuild after changing the build commands below
repo=$(cd "$(dirname "$0")/.." && pwd)
tooldir=$repo/tools/critools
cache=${CRITOOLS_CACHE:-$repo/.cache/critools}
export GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 GOSUMDB=off
key=$({
	echo "rev $BUILD_REV"
	go version
	cat "$tooldir/go.mod" "$tooldir/go.sum"
} | sha256sum | cut -c1-16)
bindir=$cache/bin
if [[ ! -f $bindir/.key || $(<"$bindir/.key") != "$key" ]]; then
	echo "build-critools: building crictl and critest into $bindir" >&2
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/bin.tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tooldir" && go build -trimpath -o "$tmp/" tool && go test -c -trimpath -o "$tmp/critest" sigs.k8s.io/cri-tools/cmd/critest) >&2
	echo "$key" >"$tmp/.key"
	rm -rf "$bindir"
	mv "$tmp" "$bindir"
	trap - EXIT
fi
echo "$bindir"
