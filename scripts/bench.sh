#!/usr/bin/env bash
# bench.sh: benchmarks, side by side with the peers, as medians and ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
scripts/mkbundle.sh "$work/true" /bin/true >/dev/null
# The runtime benchmark: create+start+wait+delete of /bin/true.
go run ./test/bench/runtime -bundle "$work/true" -berth "$here/bin/berth-runtime" -runc "$(command -v runc)" -n "${BENCH_RUNS:-50}"
# The image-pull benchmark: berth, podman and containerd against a loopback registry.
scripts/bench-pull.sh
# The engine benchmark: run --rm against ctr and podman; 50 detached containers' supervision.
scripts/bench-run.sh
# The network benchmark: run --rm on the default network over --network none; bridge throughput against loopback.
scripts/bench-net.sh
# The healthcheck benchmark: 50 containers probed every second, run by their monitors.
scripts/bench-health.sh
# The name-server benchmark: a container's name from another container against a name in /etc/hosts.
scripts/bench-dns.sh
# The VM benchmark: run --rm --isolation vm against a bare boot of the same guest kernel.
scripts/bench-vm.sh
# The compose benchmark: docker compose up --wait and down -v against berth serve and dockerd 20.10.
scripts/bench-compose.sh
# The Docker API benchmark: the docker CLI's run --rm against berth serve and dockerd; the daemons' memory.
scripts/bench-dockerapi.sh
# The CRI benchmark: pod start through crictl against containerd's CRI plugin; memory per pod; concurrent RunPodSandbox.
scripts/bench-cri.sh
