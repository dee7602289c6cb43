#!/usr/bin/env bash
# bench/verify-cost.sh - what checking images against their hash trees
# costs: the same squashfs data packed with a tree (verified reads) and
# without (`veneer pack --no-tree`), each projected with
# `veneer mount --cache=always --layer IMAGE EMPTY MNT`, in REPS interleaved
# rounds.  Per round and image: a fresh mount with dropped caches, then a
# read of the 64 MiB file and of 4,000 small files, cold, then again warm.
# Prints the medians and tree / no-tree ratios (lower is better).
#
# Usage:  sudo VENEER=build/veneer bench/verify-cost.sh [SCRATCH_DIR]
# Knobs:  REPS [5]  BIG_MIB [64]  SMALL_N [4000]
set -euo pipefail
export LC_ALL=C
VENEER=$(realpath "${VENEER:?set VENEER to the veneer binary}")
TOP=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${1:-/tmp/veneer-bench-verify}
REPS=${REPS:-5}
BIG_MIB=${BIG_MIB:-64}
SMALL_N=${SMALL_N:-4000}

mkdir -p "$SCRATCH"
cd "$SCRATCH"
if [ ! -f tree.sqfs ] || [ ! -f plain.sqfs ]; then
	rm -rf src
	python3 "$TOP/bench/image-corpus.py" src "$BIG_MIB" "$SMALL_N"
	"$VENEER" pack --force src -o tree.sqfs >/dev/null
	"$VENEER" pack --force --no-tree src -o plain.sqfs >/dev/null
fi
mkdir -p empty mnt

now() { date +%s%N; }

# one_round IMAGE: prints "cold_big cold_small warm_big warm_small" in ms
one_round() {
	"$VENEER" mount --cache=always --layer "$SCRATCH/$1" empty mnt
	sync
	echo 3 > /proc/sys/vm/drop_caches
	local t0 t1 t2 t3 t4
	t0=$(now); cat mnt/big.bin > /dev/null
	t1=$(now); cat mnt/small/* > /dev/null
	t2=$(now); cat mnt/big.bin > /dev/null
	t3=$(now); cat mnt/small/* > /dev/null
	t4=$(now)
	"$VENEER" umount mnt
	echo $(((t1 - t0) / 1000000)) $(((t2 - t1) / 1000000)) $(((t3 - t2) / 1000000)) \
		$(((t4 - t3) / 1000000))
}

: > plain.txt
: > tree.txt
for _ in $(seq "$REPS"); do
	one_round plain.sqfs >> plain.txt
	one_round tree.sqfs >> tree.txt
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { awk -v c="$2" '{ print $c }' "$1" | median; }

printf '%-22s %10s %10s %8s\n' "median of $REPS (ms)" "no tree" "tree" "ratio"
i=1
for row in "cold $BIG_MIB MiB file" "cold $SMALL_N small files" "warm $BIG_MIB MiB file" \
	"warm $SMALL_N small files"; do
	p=$(col plain.txt $i)
	t=$(col tree.txt $i)
	printf '%-22s %10s %10s %8s\n' "$row" "$p" "$t" \
		"$(awk -v p="$p" -v t="$t" 'BEGIN { printf "%.2f", p ? t / p : 0 }')"
	i=$((i + 1))
done
