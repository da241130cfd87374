#!/usr/bin/env bash
# demo.sh: run a container from a bundle built from Debian's busybox-static,
# with berth's OCI runtime. No network needed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$here/scripts/mkbundle.sh" "$work/bundle" sh -c 'echo "hello from a berth container: $(hostname), pid $$, $(id)"; echo "root filesystem:"; ls /'
cd "$work/bundle"
echo "+ berth runtime run demo"
"$here/bin/berth" runtime --root "$work/state" run "demo-$$"
