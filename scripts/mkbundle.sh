#!/usr/bin/env bash
# mkbundle.sh DIR [ARG...]: make an OCI bundle in DIR whose rootfs is Debian's
# static busybox, with a config.json from `berth runtime spec` whose process
# runs ARG... (default: sh) without a terminal. Needs busybox-static and a
# built bin/berth.
set -euo pipefail
dir=$1
shift
here=$(cd "$(dirname "$0")/.." && pwd)
berth=${BERTH:-$here/bin/berth}
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "mkbundle: $busybox missing: apt-get install busybox-static" >&2; exit 1; }
rootfs=$dir/rootfs
mkdir -p "$rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,root,usr/bin,usr/sbin,var}
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
	[ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done
chmod 1777 "$rootfs/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
rm -f "$dir/config.json"
"$berth" runtime spec --bundle "$dir"
if [ $# -gt 0 ]; then
	args=$(printf '%s\n' "$@" | python3 -c 'import json,sys; print(json.dumps([l.rstrip("\n") for l in sys.stdin]))')
else
	args='["sh"]'
fi
python3 - "$dir/config.json" "$args" <<'PY'
import json, sys
path, args = sys.argv[1], json.loads(sys.argv[2])
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = args
json.dump(c, open(path, "w"), indent=2)
PY
