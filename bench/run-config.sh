#!/usr/bin/env bash
# bench/run-config.sh - veneer and passthrough_ll in matching configurations.
#
# The harness runs passthrough_ll as libfuse ships it: no allow_other (only
# its owner can use the mount, so the kernel checks no permissions) and no
# xattr support (the kernel, told ENOSYS once, never asks again). veneer
# supports xattrs always, and in place as root it adds allow_other and with
# it default_permissions (every user keeps the directory's permission
# checks). Both cost round trips the harness's passthrough_ll never pays:
#   - with default_permissions the kernel refreshes a directory's attributes
#     (a GETATTR) before the permission check of each create and unlink once
#     the directory changed;
#   - with xattrs the kernel asks for security.capability (a GETXATTR) before
#     a write whenever it cannot tell there is none: FUSE never marks inodes
#     S_NOSEC, so for the first write after a file's attributes were (re)read,
#     and with libfuse 3.14 no FUSE_HANDLE_KILLPRIV_V2 to change that
#     (veneer asks for it through its own I/O hook: --killpriv).
# This runs both daemons in each configuration, side by side:
#
#   native                a directory on the tmpfs
#   passthrough_ll        -o source=LOWER,cache=always (as the harness runs it)
#   passthrough_ll-xattr  ... plus xattr
#   passthrough_ll-multi  ... plus xattr,allow_other,default_permissions
#   veneer                veneer mount --cache=always LOWER MNT (as the harness runs it)
#   veneer-multi          ... plus -o allow_other (so default_permissions)
#   veneer-inplace        veneer mount LOWER, as root (allow_other, default_permissions)
#   veneer-inplace-V[-V]  ... with the levers V: kpoff (--killpriv=off), skip,
#                         send, pt (--opens=skip|send|passthrough), uring
#                         (--uring: enable_uring is switched on for the run
#                         and put back after); only when named in CONFIG_TARGETS
#
# Workloads per target and round (targets visited in a rotating order), each
# on a fresh mount over a tmpfs lower (per-request cost, not disk time):
#   create  fsb create: N x (open O_CREAT|O_EXCL, write SIZE bytes, close)
#   unlink  fsb unlink of those N files
#   tar_x   tar -x of a generated tree (TREE_L1 x TREE_L2 x TREE_L3 directories
#           of TREE_FILES files of 1-16 KiB, fsb gen-tree: the harness's row (h))
#
# Usage: sudo bench/run-config.sh [SCRATCH_DIR]   (default /tmp/veneer-bench;
#        normally through `bench/run.sh` with SUITE=config)
# Knobs: VENEER (binary, required), REPS [5], N [5000], SIZE [4096],
#        TREE_L1/L2/L3 [10/10/8], TREE_FILES [20], OUT, CONFIG_TARGETS (the
#        targets, default all but the veneer-inplace-V variants).
set -uo pipefail
export LC_ALL=C

SCRATCH=${1:-/tmp/veneer-bench}
REPS=${REPS:-5}
N=${N:-5000}
SIZE=${SIZE:-4096}
TARGETS=${CONFIG_TARGETS:-"native passthrough_ll passthrough_ll-xattr passthrough_ll-multi veneer veneer-multi veneer-inplace"}
TREE=(${TREE_L1:-10} ${TREE_L2:-10} ${TREE_L3:-8} ${TREE_FILES:-20})
OUTD=${OUT:-$SCRATCH/config-$(date +%Y%m%d-%H%M%S)}
FSB=$SCRATCH/bin/fsb
PT=$SCRATCH/bin/passthrough_ll
SHARED_BENCH=${SHARED_BENCH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/shared/bench/run.sh}

say() { printf 'bench-config: [%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { say "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
[ -n "${VENEER:-}" ] && [ -x "$VENEER" ] || die "VENEER must name the veneer binary to measure"
mkdir -p "$OUTD" "$SCRATCH" || die "cannot create $OUTD"
if ! [ -x "$FSB" ] || ! [ -x "$PT" ]; then
	[ -f "$SHARED_BENCH" ] || die "no $FSB or $PT, and no harness at $SHARED_BENCH to build them"
	say "building fsb and passthrough_ll: running the harness once (TARGETS=native REPS=1)"
	TARGETS=native REPS=1 OUT=$OUTD/corpus-run bash "$SHARED_BENCH" "$SCRATCH" >"$OUTD/corpus-run.log" 2>&1 ||
		die "the harness failed (see $OUTD/corpus-run.log)"
fi

TMP=$SCRATCH/config-tmpfs
mkdir -p "$TMP"
mountpoint -q "$TMP" || mount -t tmpfs -o size=2g tmpfs "$TMP" || die "cannot mount a tmpfs on $TMP"
URING_PARAM=/sys/module/fuse/parameters/enable_uring
URING_OLD=
if [[ " $TARGETS " == *-uring* ]]; then
	URING_OLD=$(cat "$URING_PARAM" 2>/dev/null) || die "no FUSE over io_uring in this kernel ($URING_PARAM)"
	echo 1 >"$URING_PARAM" || die "cannot switch $URING_PARAM on"
	say "switched $URING_PARAM on for the run (it was $URING_OLD; put back at the end)"
fi
cleanup() {
	local t
	for t in $TARGETS; do umount_t "$t"; done
	umount "$TMP" 2>/dev/null || umount -l "$TMP"
	[ -z "$URING_OLD" ] || echo "$URING_OLD" >"$URING_PARAM"
}
trap cleanup EXIT

lower_of() { echo "$TMP/lower-$1"; }
mnt_of() { case $1 in native | veneer-inplace*) lower_of "$1" ;; *) echo "$TMP/mnt-$1" ;; esac; }
# The options of a veneer-inplace-V[-V...] target.
variant_args() {
	local v
	for v in $(tr - ' ' <<<"${1#veneer-inplace-}"); do
		case $v in
		kpoff) echo --killpriv=off ;;
		skip | send) echo "--opens=$v" ;;
		pt) echo --opens=passthrough ;;
		uring) echo --uring ;;
		*) die "unknown lever '$v' in target $1" ;;
		esac
	done
}
# veneer without -f and passthrough_ll both return once the mount is ready
mount_t() {
	local t=$1 l m
	l=$(lower_of "$t") m=$(mnt_of "$t")
	mkdir -p "$l" "$m"
	case $t in
	native) ;;
	passthrough_ll) "$PT" -o "source=$l,cache=always" "$m" ;;
	passthrough_ll-xattr) "$PT" -o "source=$l,cache=always,xattr" "$m" ;;
	passthrough_ll-multi) "$PT" -o "source=$l,cache=always,xattr,allow_other,default_permissions" "$m" ;;
	veneer) "$VENEER" mount --cache=always "$l" "$m" ;;
	veneer-multi) "$VENEER" mount --cache=always -o allow_other "$l" "$m" ;;
	veneer-inplace) "$VENEER" mount "$l" ;;
	veneer-inplace-*) "$VENEER" mount $(variant_args "$t") "$l" ;;
	esac >>"$OUTD/$t.log" 2>&1
}
umount_t() {
	local t=$1 m
	m=$(mnt_of "$t")
	[ "$t" = native ] && return 0
	awk -v m="$m" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo || return 0
	fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m"
	sleep 0.2
}

TARBALL=$TMP/tree.tar
if ! [ -f "$TARBALL" ]; then
	mkdir -p "$TMP/gen" && "$FSB" gen-tree "$TMP/gen/tree" "${TREE[@]}" >/dev/null || die "fsb gen-tree failed"
	tar -C "$TMP/gen" -cf "$TARBALL" tree || die "tar -c failed"
	rm -rf "$TMP/gen"
fi
say "targets: $TARGETS; $REPS rounds: $N files of $SIZE bytes, tar -x of $(tar -tf "$TARBALL" | wc -l) entries; results in $OUTD"
targets=($TARGETS)
for r in $(seq "$REPS"); do
	k=$(((r - 1) % ${#targets[@]}))
	order=("${targets[@]:k}" "${targets[@]:0:k}")
	for t in "${order[@]}"; do
		mount_t "$t" || die "mount of $t failed (see $OUTD/$t.log)"
		d=$(mnt_of "$t")/w
		c=$("$FSB" create "$d" "$N" "$SIZE") || die "$t: fsb create failed"
		u=$("$FSB" unlink "$d" "$N") || die "$t: fsb unlink failed"
		s=$EPOCHREALTIME
		tar -xf "$TARBALL" -C "$(mnt_of "$t")" || die "$t: tar -x failed"
		x=$(awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')
		rm -rf "$(lower_of "$t")/tree"
		echo "$t $r ${c%% *} ${u%% *} $x" >>"$OUTD/raw.txt"
		umount_t "$t"
	done
	say "round $r done"
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v t="$1" -v c="$2" '$1 == t { print $c }' "$OUTD/raw.txt" | median; }
{
	echo "# veneer and passthrough_ll in matching configurations (tmpfs lower, medians of $REPS rounds)"
	echo
	echo "veneer: \`$("$VENEER" --version)\`, kernel $(uname -r), $(date -u +%Y-%m-%d). create/unlink: $N files of $SIZE B; tar -x: $(tar -tf "$TARBALL" | wc -l) entries, $(($(stat -c %s "$TARBALL") >> 20)) MiB."
	echo
	echo "| target | create µs/file | unlink µs/file | tar -x s | create vs native | unlink vs native | tar -x vs native |"
	echo "|---|---|---|---|---|---|---|"
	nc=$(col native 3) nu=$(col native 4) nx=$(col native 5)
	for t in $TARGETS; do
		awk -v t="$t" -v c="$(col "$t" 3)" -v u="$(col "$t" 4)" -v x="$(col "$t" 5)" \
		    -v nc="$nc" -v nu="$nu" -v nx="$nx" -v n="$N" 'BEGIN {
			printf "| %s | %.1f | %.1f | %.2f | %.2fx | %.2fx | %.2fx |\n", t, c / n * 1e6, u / n * 1e6, x, nc / c, nu / u, nx / x }'
	done
} >"$OUTD/config.md"
cat "$OUTD/config.md"
