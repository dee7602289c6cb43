#!/usr/bin/env bash
# Proves the README's two commands on a machine where nothing was installed
# by hand: a Debian 12 minbase chroot holding only git, make and
# ca-certificates, into which the repository is cloned; then `make demo` and
# `make check` run there, installing what they need themselves.
#
# Not part of `make check`: it takes as long as `make check` plus the
# installs.  Run it as root before any change to dependencies.
#
#   scripts/fresh-check.sh [REPO]      (REPO: default this checkout's HEAD)
#
# FRESH_DIR (default /var/tmp/veneer-fresh) keeps one pristine debootstrap
# result in FRESH_DIR/base; every run works in a new copy of it, so nothing
# a run installs reaches the next.  The chroot runs this machine's kernel,
# not Debian 12's own.  Everything is mounted inside a private mount
# namespace (unshare -m): a failure leaves nothing mounted on the host.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
repo=${1:-$top}
fresh=${FRESH_DIR:-/var/tmp/veneer-fresh}
base=$fresh/base

die() { echo "fresh-check: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot and mounts)"
[ -c /dev/fuse ] || die "/dev/fuse is missing: the tests mount FUSE filesystems"
if ! command -v debootstrap >/dev/null; then
	echo "fresh-check: installing debootstrap"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
		die "cannot install debootstrap: apt-get install debootstrap"
fi

# The Debian mirror this machine's apt uses, so the chroot reaches the same.
mirror() {
	local f url
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		url=$(awk '/^URIs:/ {print $2; exit}' "$f")
		case $url in */debian) echo "$url"; return ;; esac
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		url=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' "$f")
		[ -n "$url" ] && { echo "$url"; return; }
	done
	die "no Debian mirror found in /etc/apt/sources.list*"
}

if [ ! -f "$base/.complete" ]; then
	rm -rf "$base"
	mkdir -p "$base"
	echo "fresh-check: debootstrap --variant=minbase bookworm $base"
	debootstrap --variant=minbase --include=git,make,ca-certificates bookworm "$base" \
		"$(mirror)" >"$fresh/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$fresh/debootstrap.log"; die "debootstrap failed (log: $fresh/debootstrap.log)"; }
	touch "$base/.complete"
fi

root=$fresh/run-$(date +%Y%m%d-%H%M%S)
echo "fresh-check: copying the base to $root"
cp -a "$base" "$root"
rm -f "$root/.complete"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
rm -rf "$root/etc/apt/sources.list.d" "$root/etc/apt/sources.list"
cp -a /etc/apt/sources.list.d "$root/etc/apt/"
[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root/etc/apt/"
cp -a /etc/apt/apt.conf.d/. "$root/etc/apt/apt.conf.d/"
[ -e "$root/etc/mtab" ] || ln -s ../proc/self/mounts "$root/etc/mtab"
git clone -q "$repo" "$root/src/veneer"
echo "fresh-check: cloned $(git -C "$root/src/veneer" log -1 --format='%h %s')"

# Inside a private mount namespace: bind what the tests need, then run the
# two commands as a new user would.  Its mounts vanish with it.
inner=$(cat <<'EOS'
set -eu
r=$1
# the chroot's root must be a mount point, as / is on a real machine
# (unshare --propagation and similar change it)
mount --bind "$r" "$r"
mount -t proc proc "$r/proc"
mount --rbind /sys "$r/sys"
mount -t tmpfs -o mode=755 devtmp "$r/dev"
for d in null zero full random urandom tty fuse loop-control; do
	[ -e "/dev/$d" ] || continue
	touch "$r/dev/$d"
	mount --bind "/dev/$d" "$r/dev/$d"
done
for d in /dev/loop[0-9]*; do
	[ -b "$d" ] || continue
	touch "$r$d"
	mount --bind "$d" "$r$d"
done
mkdir -p "$r/dev/pts" "$r/dev/shm"
mount --bind /dev/pts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"
ln -s /proc/self/fd/1 "$r/dev/stdout"
ln -s /proc/self/fd/2 "$r/dev/stderr"
exec chroot "$r" /usr/bin/env -i HOME=/root TERM=dumb CI="${CI:-true}" \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	/bin/sh -c 'cd /src/veneer && make demo && make check'
EOS
)
log=$root/fresh-check.log
echo "fresh-check: make demo && make check in the chroot (log: $log)"
set +e
unshare -m --propagation private bash -c "$inner" fresh-check "$root" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
echo "fresh-check: exit $rc; last line: $(grep -v '^$' "$log" | tail -n 1)"
exit "$rc"
