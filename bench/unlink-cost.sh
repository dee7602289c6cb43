#!/usr/bin/env bash
# bench/unlink-cost.sh - what one unlink costs veneer and passthrough_ll.
#
# Both daemons in place on a tmpfs lower, in the same configuration
# (allow_other, default_permissions, long caching, xattrs), side by side:
#
#   passthrough_ll-multi  libfuse's passthrough_ll -o source=L,cache=always,xattr,allow_other,default_permissions L
#   veneer                veneer mount L (defaults in place: --opens=skip, killpriv v2)
#   veneer-kpoff          veneer mount --killpriv=off L
#
# Per target and round (the order rotates by one each round), on a fresh
# mount: fsb create of N files of 4 KiB, sync, then fsb unlink of them
# (and of their directory), and over that unlink alone:
#   - its wall time;
#   - the daemon's read and write system calls (/proc/PID/io syscr, syscw):
#     each request is one read of /dev/fuse (a FORGET too, unless batched),
#     each reply one write, so these count the requests without tracing;
#   - the daemon's CPU time (perf stat -e task-clock -p PID, all its
#     threads), which a loaded machine disturbs far less than wall time;
#   - for veneer, its requests by opcode (veneer status --json, before and
#     after; python3 takes the difference).
#
# Usage:  sudo VENEER=path/to/veneer FSB=path/to/fsb PT=path/to/passthrough_ll bench/unlink-cost.sh [SCRATCH_DIR]
#         (FSB and PT default to the harness's, in /tmp/veneer-bench/bin)
# Knobs: TARGETS, REPS [7], N [5000], OUT [SCRATCH/unlink-DATE].
set -uo pipefail
export LC_ALL=C

SCRATCH=${1:-/tmp/veneer-unlink}
TARGETS=${TARGETS:-"passthrough_ll-multi veneer veneer-kpoff"}
REPS=${REPS:-7}
N=${N:-5000}
FSB=${FSB:-/tmp/veneer-bench/bin/fsb}
PT=${PT:-/tmp/veneer-bench/bin/passthrough_ll}
OUTD=${OUT:-$SCRATCH/unlink-$(date +%Y%m%d-%H%M%S)}

say() { printf 'bench-unlink: [%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { say "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
[ -n "${VENEER:-}" ] && [ -x "$VENEER" ] || die "VENEER must name the veneer binary to measure"
[ -x "$FSB" ] && [ -x "$PT" ] || die "no fsb or passthrough_ll (FSB=$FSB, PT=$PT): run bench/run.sh once"
command -v perf >/dev/null || die "perf is missing (linux-perf)"
TMP=$SCRATCH/tmpfs
mkdir -p "$OUTD" "$TMP" || die "cannot create $OUTD"
mountpoint -q "$TMP" || mount -t tmpfs -o size=1g tmpfs "$TMP" || die "cannot mount a tmpfs on $TMP"

is_fuse() { # the last mount on $1 is a FUSE one
	awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++); t = $(i + 1) } END { exit t !~ /^fuse/ }' /proc/self/mountinfo
}
umount_l() { is_fuse "$1" || return 0; fusermount3 -u "$1" 2>/dev/null || umount -l "$1"; sleep 0.2; }
cleanup() {
	local t
	for t in $TARGETS; do umount_l "$TMP/$t"; done
	umount "$TMP" 2>/dev/null || umount -l "$TMP"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM

mount_t() { # target -> the daemon's pid on stdout
	local t=$1 l=$TMP/$1
	mkdir -p "$l"
	case $t in
	passthrough_ll-multi) "$PT" -o "source=$l,cache=always,xattr,allow_other,default_permissions" "$l" ;;
	veneer) "$VENEER" mount "$l" ;;
	veneer-kpoff) "$VENEER" mount --killpriv=off "$l" ;;
	*) die "unknown target: $t" ;;
	esac >>"$OUTD/$t.log" 2>&1 || return 1
	is_fuse "$l" || return 1
	pgrep -o -f -- " $l\$" # the daemon: the oldest process named after its mount
}
ops_delta() { # status.json before, after -> "op=count ..." of the requests between them
	python3 -c 'import json, sys
a, b = (json.load(open(f))["operations"] for f in sys.argv[1:3])
print(" ".join("%s=%d" % (k, v["count"] - a.get(k, {"count": 0})["count"]) for k, v in b.items() if v["count"] != a.get(k, {"count": 0})["count"]))' "$1" "$2"
}
io() { awk '/^syscr|^syscw/ { printf "%s ", $2 }' "/proc/$1/io"; }

echo "target round seconds reads writes cpu_ms" >"$OUTD/raw.txt"
echo "# before: $(cat /proc/loadavg)" >"$OUTD/loadavg.txt"
read -r -a targets <<<"$TARGETS"
for r in $(seq "$REPS"); do
	k=$(((r - 1) % ${#targets[@]}))
	for t in "${targets[@]:k}" "${targets[@]:0:k}"; do
		pid=$(mount_t "$t") && [ -n "$pid" ] || die "mount of $t failed (see $OUTD/$t.log)"
		l=$TMP/$t
		"$FSB" create "$l/w" "$N" 4096 >/dev/null || die "$t: fsb create failed"
		sync
		sleep 0.3
		[ "$t" = passthrough_ll-multi ] || "$VENEER" status --json "$l" >"$OUTD/status.before" 2>/dev/null
		read -r r0 w0 <<<"$(io "$pid")"
		o=$(perf stat -x, -e task-clock -o "$OUTD/perf.tmp" -p "$pid" -- "$FSB" unlink "$l/w" "$N") ||
			die "$t: fsb unlink failed"
		sleep 0.3 # the last forgets
		read -r r1 w1 <<<"$(io "$pid")"
		[ "$t" = passthrough_ll-multi ] || { "$VENEER" status --json "$l" >"$OUTD/status.after" 2>/dev/null &&
			echo "$t $r $(ops_delta "$OUTD/status.before" "$OUTD/status.after")" >>"$OUTD/ops.txt"; }
		cpu=$(awk -F, '$3 == "task-clock" { print $1 }' "$OUTD/perf.tmp")
		echo "$t $r ${o%% *} $((r1 - r0)) $((w1 - w0)) $cpu" >>"$OUTD/raw.txt"
		umount_l "$l"
	done
	echo "# after round $r: $(cat /proc/loadavg)" >>"$OUTD/loadavg.txt"
	say "round $r done (loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
done
rm -f "$OUTD/perf.tmp" "$OUTD/status.before" "$OUTD/status.after"

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v t="$1" -v c="$2" '$1 == t { print $c }' "$OUTD/raw.txt" | median; }
rng() { awk -v t="$1" -v c="$2" '$1 == t { print $c }' "$OUTD/raw.txt" | sort -g | sed -n '1p;$p' | paste -sd-; }
{
	echo "# unlink of $N files, in place on a tmpfs, medians of $REPS rounds (min-max)"
	echo
	echo "| target | µs/file (wall) | daemon CPU µs/file | daemon reads/file | daemon writes/file |"
	echo "|---|---|---|---|---|"
	for t in $TARGETS; do
		awk -v n="$N" -v t="$t" -v s="$(col "$t" 3)" -v sr="$(rng "$t" 3)" -v c="$(col "$t" 6)" -v cr="$(rng "$t" 6)" \
			-v rd="$(col "$t" 4)" -v wr="$(col "$t" 5)" 'BEGIN {
			split(sr, a, "-"); split(cr, b, "-")
			printf "| %s | %.1f (%.1f-%.1f) | %.1f (%.1f-%.1f) | %.2f | %.2f |\n", t, s * 1e6 / n, a[1] * 1e6 / n, a[2] * 1e6 / n,
				c * 1e3 / n, b[1] * 1e3 / n, b[2] * 1e3 / n, rd / n, wr / n }'
	done
	echo
	echo "Raw rounds: raw.txt (seconds, daemon read and write calls, daemon CPU ms); veneer's requests per round (veneer status): ops.txt; load: loadavg.txt."
	echo
	echo '```'
	cat "$OUTD/ops.txt" 2>/dev/null
	echo '```'
} >"$OUTD/unlink.md"
cat "$OUTD/unlink.md"
