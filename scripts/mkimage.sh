#!/usr/bin/env bash
# mkimage.sh OUT.tar [NAME:TAG]: write a docker-archive (what `berth load`
# and `docker load` read) of a one-layer image whose root filesystem is
# Debian's static busybox. Reproducible: the same busybox gives the same
# image ID. No network. Default name: berth-demo/busybox:latest.
#   MKIMAGE_VOLUMES="/a /b"  declare volumes in the image's config (and
#                            put a file in each, for volume copy-up)
#   MKIMAGE_EXPOSE="80/tcp 53/udp"  declare exposed ports
#   MKIMAGE_HEALTHCHECK='{"Test":["CMD-SHELL","true"],"Interval":1000000000}'
#                            docker's Healthcheck object for the config
#   MKIMAGE_CMD='["sleep","3600"]'  the config's Cmd (default ["sh"])
set -euo pipefail
out=$1
name=${2:-berth-demo/busybox:latest}
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "mkimage: $busybox missing: apt-get install busybox-static" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,root,home,usr/bin,usr/sbin,var/log,var/www}
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
	[ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done
chmod 1777 "$rootfs/tmp"
chmod 700 "$rootfs/root"
printf 'root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nwww:x:33:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
vols=
for v in ${MKIMAGE_VOLUMES:-}; do
	mkdir -p "$rootfs$v"
	echo "from the image" >"$rootfs$v/seed"
	vols="$vols${vols:+,}\"$v\":{}"
done
ports=
for p in ${MKIMAGE_EXPOSE:-}; do
	ports="$ports${ports:+,}\"$p\":{}"
done
hc=
[ -n "${MKIMAGE_HEALTHCHECK:-}" ] && hc=",\"Healthcheck\":$MKIMAGE_HEALTHCHECK"
mkdir -p "$work/img"
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$rootfs" -cf "$work/layer.tar" .
layer=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
mkdir -p "$work/img/$layer"
mv "$work/layer.tar" "$work/img/$layer/layer.tar"
printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s,"Volumes":{%s},"ExposedPorts":{%s},"Labels":{"org.opencontainers.image.title":"berth demo busybox"}%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/mkimage.sh: Debian busybox-static"}]}' "${MKIMAGE_CMD:-[\"sh\"]}" "$vols" "$ports" "$hc" "$layer" >"$work/config.json"
cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/img/$cfg.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' "$cfg" "$name" "$layer" >"$work/img/manifest.json"
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$work/img" -cf "$out" .
