#!/usr/bin/env bash
# bench/run-perm.sh - what multi-user permission checks cost per created and
# unlinked file, veneer and passthrough_ll in the same configurations.
#
# The harness runs passthrough_ll without allow_other, so only its owner can
# use that mount and the kernel checks no permissions. veneer in place as
# root adds allow_other and with it default_permissions (every user keeps
# the directory's permission checks). With default_permissions the kernel
# refreshes a directory's attributes (a GETATTR round trip) before the
# permission check of each create and unlink once the directory changed.
# This puts both daemons in both configurations side by side:
#
#   native               a directory on a tmpfs
#   passthrough_ll       -o source=LOWER,cache=always (as the harness runs it)
#   passthrough_ll-multi ... plus allow_other,default_permissions
#   veneer               veneer mount --cache=always LOWER MNT (as the harness runs it)
#   veneer-multi         ... plus -o allow_other (so default_permissions)
#   veneer-inplace       veneer mount LOWER, as root (allow_other, default_permissions)
#
# Each round visits every target in a rotating order and times, with the
# harness's fsb helper, N x (create, write SIZE bytes, close) in a new
# directory and then N unlinks (the harness's row (g)). The lower is a tmpfs,
# so the figures are per-request cost, not disk time.
#
# Usage: sudo bench/run-perm.sh [SCRATCH_DIR]   (default /tmp/veneer-bench;
#        normally through `bench/run.sh` with SUITE=perm)
# Knobs: VENEER (binary, required), REPS [5], N [5000], SIZE [4096], OUT.
set -uo pipefail
export LC_ALL=C

SCRATCH=${1:-/tmp/veneer-bench}
REPS=${REPS:-5}
N=${N:-5000}
SIZE=${SIZE:-4096}
TARGETS="native passthrough_ll passthrough_ll-multi veneer veneer-multi veneer-inplace"
OUTD=${OUT:-$SCRATCH/perm-$(date +%Y%m%d-%H%M%S)}
FSB=$SCRATCH/bin/fsb
PT=$SCRATCH/bin/passthrough_ll
SHARED_BENCH=${SHARED_BENCH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/shared/bench/run.sh}

say() { printf 'bench-perm: [%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
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

TMP=$SCRATCH/perm-tmpfs
mkdir -p "$TMP"
mountpoint -q "$TMP" || mount -t tmpfs -o size=1g tmpfs "$TMP" || die "cannot mount a tmpfs on $TMP"
cleanup() {
	local t
	for t in $TARGETS; do umount_t "$t"; done
	umount "$TMP" 2>/dev/null || umount -l "$TMP"
}
trap cleanup EXIT

lower_of() { echo "$TMP/lower-$1"; }
mnt_of() { case $1 in native | veneer-inplace) lower_of "$1" ;; *) echo "$TMP/mnt-$1" ;; esac; }
# veneer without -f and passthrough_ll both return once the mount is ready
mount_t() {
	local t=$1 l m
	l=$(lower_of "$t") m=$(mnt_of "$t")
	mkdir -p "$l" "$m"
	case $t in
	native) ;;
	passthrough_ll) "$PT" -o "source=$l,cache=always" "$m" ;;
	passthrough_ll-multi) "$PT" -o "source=$l,cache=always,allow_other,default_permissions" "$m" ;;
	veneer) "$VENEER" mount --cache=always "$l" "$m" ;;
	veneer-multi) "$VENEER" mount --cache=always -o allow_other "$l" "$m" ;;
	veneer-inplace) "$VENEER" mount "$l" ;;
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

say "targets: $TARGETS; $REPS rounds of $N files of $SIZE bytes; results in $OUTD"
targets=($TARGETS)
for r in $(seq "$REPS"); do
	k=$(((r - 1) % ${#targets[@]}))
	order=("${targets[@]:k}" "${targets[@]:0:k}")
	for t in "${order[@]}"; do
		mount_t "$t" || die "mount of $t failed (see $OUTD/$t.log)"
		d=$(mnt_of "$t")/w
		c=$("$FSB" create "$d" "$N" "$SIZE") || die "$t: fsb create failed"
		u=$("$FSB" unlink "$d" "$N") || die "$t: fsb unlink failed"
		echo "$t $r ${c%% *} ${u%% *}" >>"$OUTD/raw.txt"
		umount_t "$t"
	done
	say "round $r done"
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
{
	echo "# Permission checks per file: create+write+close and unlink ($N files of $SIZE B, tmpfs lower, medians of $REPS rounds)"
	echo
	echo "veneer: \`$("$VENEER" --version)\`, kernel $(uname -r), $(date -u +%Y-%m-%d)."
	echo
	echo "| target | create µs/file | unlink µs/file | create vs native | unlink vs native |"
	echo "|---|---|---|---|---|"
	nc=$(awk '$1 == "native" { print $3 }' "$OUTD/raw.txt" | median)
	nu=$(awk '$1 == "native" { print $4 }' "$OUTD/raw.txt" | median)
	for t in $TARGETS; do
		c=$(awk -v t="$t" '$1 == t { print $3 }' "$OUTD/raw.txt" | median)
		u=$(awk -v t="$t" '$1 == t { print $4 }' "$OUTD/raw.txt" | median)
		awk -v t="$t" -v c="$c" -v u="$u" -v nc="$nc" -v nu="$nu" -v n="$N" 'BEGIN {
			printf "| %s | %.1f | %.1f | %.2fx | %.2fx |\n", t, c / n * 1e6, u / n * 1e6, nc / c, nu / u }'
	done
} >"$OUTD/perm.md"
cat "$OUTD/perm.md"
