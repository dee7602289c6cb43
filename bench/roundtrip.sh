#!/usr/bin/env bash
# bench/roundtrip.sh - the cost of one FUSE round trip, per configuration.
#
# `fsb walkstat` of a generated tree through a --cache=never mount, where
# every stat is a LOOKUP the daemon answers (no kernel cache), so the time
# per entry is the round trip plus the daemon's work.  Configurations
# (veneer mount options, comma-separated in CONFIGS, "-" for none) are
# visited in a rotating order in each of REPS rounds; the median per
# configuration is printed with the spread (min-max) of the rounds.
#
# Usage: sudo VENEER=build/veneer FSB=/path/fsb bench/roundtrip.sh [SCRATCH]
# Knobs: CONFIGS ["- --uring"], REPS [7], TREE (fsb gen-tree sizes) ["10 10 8 20"].
# A configuration with --uring switches enable_uring on for the run and
# puts the old value back at the end.
set -uo pipefail
export LC_ALL=C
SCRATCH=${1:-/tmp/veneer-roundtrip}
REPS=${REPS:-7}
read -r -a configs <<<"${CONFIGS:-- --uring}"
read -r -a tree <<<"${TREE:-10 10 8 20}"
PARAM=/sys/module/fuse/parameters/enable_uring

die() { echo "roundtrip: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
[ -x "${VENEER:-}" ] && [ -x "${FSB:-}" ] || die "VENEER and FSB must name the binaries"
mkdir -p "$SCRATCH/mnt" || die "cannot create $SCRATCH"
[ -d "$SCRATCH/tree" ] || "$FSB" gen-tree "$SCRATCH/tree" "${tree[@]}" >/dev/null || die "gen-tree failed"
old=
if [[ " ${configs[*]} " == *--uring* ]]; then
	old=$(cat "$PARAM") || die "no FUSE over io_uring in this kernel"
	echo 1 >"$PARAM"
fi
trap '[ -z "$old" ] || echo "$old" >"$PARAM"; umount "$SCRATCH/mnt" 2>/dev/null' EXIT
raw=$SCRATCH/raw-$(date +%Y%m%d-%H%M%S).txt
n=${#configs[@]}
for r in $(seq "$REPS"); do
	for i in $(seq 0 $((n - 1))); do
		c=${configs[$(((i + r) % n))]}
		opts=()
		[ "$c" = - ] || IFS=, read -r -a opts <<<"$c"
		"$VENEER" mount --cache=never "${opts[@]}" "$SCRATCH/tree" "$SCRATCH/mnt" || die "mount ($c) failed"
		out=$("$FSB" walkstat "$SCRATCH/mnt") || die "walkstat ($c) failed"
		umount "$SCRATCH/mnt"
		set -- $out
		echo "$c $r $(awk -v s="$1" -v k="$2" 'BEGIN { printf "%.2f", s / k * 1e6 }')" >>"$raw"
	done
done
echo "µs per stat (LOOKUP round trip), median and min-max of $REPS rounds; raw: $raw"
for c in "${configs[@]}"; do
	awk -v c="$c" '$1 == c { print $3 }' "$raw" | sort -g |
		awk -v c="$c" '{ v[NR] = $1 } END { printf "%-28s %8.2f  (%.2f-%.2f)\n", c, v[int((NR + 1) / 2)], v[1], v[NR] }'
done
