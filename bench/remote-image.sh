#!/usr/bin/env bash
# bench/remote-image.sh - reads of a remote image against the same image on
# local disk: one verified image (veneer pack) served over HTTP from
# 127.0.0.1 by the tests' range server (tests/range_server.py, Python:
# a slower server than a real one, so remote figures are a lower bound) and
# projected with `veneer mount --cache=always --layer URL#DIGEST`, against
# `--layer IMAGE#DIGEST`.  Per round: local cold; remote cold (empty chunk
# cache); remote warm (the chunk cache kept, a fresh mount, page cache
# dropped).  Each reads the 64 MiB file and the 4,000 small files.  Prints
# medians in ms, remote/local ratios, and the requests and bytes the
# server answered in the last cold round.
#
# Usage:  sudo VENEER=build/veneer bench/remote-image.sh [SCRATCH_DIR]
# Knobs:  REPS [5]  BIG_MIB [64]  SMALL_N [4000]
set -euo pipefail
export LC_ALL=C
VENEER=$(realpath "${VENEER:?set VENEER to the veneer binary}")
TOP=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${1:-/tmp/veneer-bench-remote}
REPS=${REPS:-5}
BIG_MIB=${BIG_MIB:-64}
SMALL_N=${SMALL_N:-4000}

mkdir -p "$SCRATCH/www"
cd "$SCRATCH"
if [ ! -f www/img.sqfs ]; then
	rm -rf src
	python3 "$TOP/bench/image-corpus.py" src "$BIG_MIB" "$SMALL_N"
	"$VENEER" pack --force src -o www/img.sqfs | tail -1 | sed 's/^digest: //' > digest
fi
DIGEST=$(cat digest)
mkdir -p empty mnt

python3 -c '
import sys, time
sys.path.insert(0, sys.argv[1] + "/tests")
from range_server import RangeServer
s = RangeServer(sys.argv[2])
print(s.port, flush=True)
while True:
    time.sleep(3600)
' "$TOP" "$SCRATCH/www" > port &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; "$VENEER" umount mnt 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s port ] && break; sleep 0.1; done
URL="http://127.0.0.1:$(cat port)/img.sqfs"

now() { date +%s%N; }

# one_round SOURCE CACHE_DIR: prints "big_ms small_ms"
one_round() {
	"$VENEER" mount --cache=always --cache-dir="$2" --layer "$1#$DIGEST" empty mnt
	sync
	echo 3 > /proc/sys/vm/drop_caches
	local t0 t1 t2
	t0=$(now); cat mnt/big.bin > /dev/null
	t1=$(now); cat mnt/small/* > /dev/null
	t2=$(now)
	"$VENEER" status --json mnt > last-status.json
	"$VENEER" umount mnt
	echo $(((t1 - t0) / 1000000)) $(((t2 - t1) / 1000000))
}

: > local.txt
: > cold.txt
: > warm.txt
for _ in $(seq "$REPS"); do
	one_round "$SCRATCH/www/img.sqfs" "$SCRATCH/cache" >> local.txt
	rm -rf "$SCRATCH/cache"
	one_round "$URL" "$SCRATCH/cache" >> cold.txt
	cp last-status.json cold-status.json
	one_round "$URL" "$SCRATCH/cache" >> warm.txt
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { awk -v c="$2" '{ print $c }' "$1" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b ? a / b : 0 }'; }

printf '%-24s %8s %8s %8s %11s %11s\n' "median of $REPS (ms)" local cold warm cold/local warm/local
i=1
for row in "$BIG_MIB MiB file" "$SMALL_N small files"; do
	l=$(col local.txt $i)
	c=$(col cold.txt $i)
	w=$(col warm.txt $i)
	printf '%-24s %8s %8s %8s %11s %11s\n' "$row" "$l" "$c" "$w" "$(ratio "$c" "$l")" \
		"$(ratio "$w" "$l")"
	i=$((i + 1))
done
python3 -c '
import json, os, sys
st = json.load(open("cold-status.json"))
r = [l for l in st["layers"] if "remote" in l][0]["remote"]
size = os.path.getsize(sys.argv[1])
req, got, chunks = r["requests"], r["bytes_fetched"], r["cache_misses"]
print(f"cold round: {req} requests, {got} bytes fetched ({got / size:.2f} x the image), "
      f"{chunks} chunks fetched")
' "$SCRATCH/www/img.sqfs"
