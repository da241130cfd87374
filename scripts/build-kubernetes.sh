#!/usr/bin/env bash
# build-kubernetes.sh: builds kubelet, kube-apiserver, kube-controller-manager,
# kube-scheduler and kubectl from tools/kubernetes (k8s.io/kubernetes at the
# release matching the CRI API berth serves) into .cache/kubernetes/bin (or
# $KUBERNETES_CACHE/bin), once per go.mod/go.sum/Go version/script revision,
# and prints that directory. Quiet unless it builds; a build takes minutes
# (the kubelet and the apiserver are large), so the cache is kept.
set -euo pipefail
BUILD_REV=1 # bump to force a rebuild after changing the build commands below
repo=$(cd "$(dirname "$0")/.." && pwd)
tooldir=$repo/tools/kubernetes
cache=${KUBERNETES_CACHE:-$repo/.cache/kubernetes}
export GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 GOSUMDB=off
# The release the binaries report (the kubelet registers it as its node's
# version; kubectl compares it): the one go.mod pins.
version=$(cd "$tooldir" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
key=$({
	echo "rev $BUILD_REV"
	go version
	cat "$tooldir/go.mod" "$tooldir/go.sum"
} | sha256sum | cut -c1-16)
bindir=$cache/bin
if [[ ! -f $bindir/.key || $(<"$bindir/.key") != "$key" ]]; then
	echo "build-kubernetes: building kubelet, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl $version into $bindir (minutes)" >&2
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/bin.tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	major=${version#v}
	minor=${major#*.}
	minor=${minor%%.*}
	major=${major%%.*}
	ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	done
	(cd "$tooldir" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" tool) >&2
	echo "$key" >"$tmp/.key"
	rm -rf "$bindir"
	mv "$tmp" "$bindir"
	trap - EXIT
fi
echo "$bindir"
