#!/usr/bin/env bash
# bench-dns.sh: the latency of a container's name through the name server
# of user networks (127.0.0.11), asked from another container's network
# namespace, against a lookup of a name in the host's /etc/hosts (what
# names cost when berth wrote them into hosts files). Medians of 100.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
T=$(mktemp -d /tmp/berth-bench-dns.XXXXXX)
BENCH=bench-dns
# shellcheck source=scripts/bench-lib.sh
. "$here/scripts/bench-lib.sh"
berth_in_T
scripts/mkimage.sh "$T/busybox.tar" >/dev/null
berth load -q -i "$T/busybox.tar" >/dev/null
berth network create benchnet >/dev/null
berth run -d --name target --network benchnet berth-demo/busybox sleep 100000 >/dev/null
berth run -d --name asker --network benchnet berth-demo/busybox sleep 100000 >/dev/null
pid=$(berth inspect -f '{{.State.Pid}}' asker)
echo "bench-dns: name lookups, medians of ${BENCH_DNS_LOOKUPS:-100}:"
GODEBUG=netdns=cgo go run ./test/bench/dnslat -pid "$pid" -name target -n "${BENCH_DNS_LOOKUPS:-100}"
