#!/usr/bin/env bash
# bench/remote-image.sh - reads of a remote image against the same image on
# local disk, and what attaching and reading a remote image costs in
# requests and bytes as the server logs them.
#
# The server is Debian's nginx, started here on a free port of 127.0.0.1
# (config, pid file, logs and temporary files under SCRATCH_DIR/nginx,
# killed by its pid file on exit), logging each request as
# "METHOD URI RANGE STATUS BODY_BYTES".
#
# Part 1, side by side: one verified image (veneer pack; a BIG_MIB file
# half random and half text, and SMALL_N small files) projected with
# `veneer mount --cache=always --layer URL#DIGEST`, against
# `--layer IMAGE#DIGEST`.  Per round: local cold; remote cold (empty chunk
# cache); remote warm (the chunk cache kept, a fresh mount, page cache
# dropped).  Each reads the big file and the small files.  Prints medians
# in ms, remote/local ratios, and the requests and bytes nginx logged in
# the last cold round against the distinct chunks it sent.
#
# Part 2, a 1 GiB image (LARGE_MIB of random files and SMALL_N small
# files, built once): requests and bytes of the attach up to the answer of
# the first lookup, and of one 4 KiB file read cold after it, split into
# data, squashfs metadata and hash-tree chunks.
#
# Usage:  sudo VENEER=build/veneer bench/remote-image.sh [SCRATCH_DIR]
# Knobs:  REPS [5]  BIG_MIB [64]  SMALL_N [4000]  LARGE_MIB [1024] (0: no part 2)
set -euo pipefail
export LC_ALL=C
VENEER=$(realpath "${VENEER:?set VENEER to the veneer binary}")
TOP=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=$(realpath -m "${1:-/tmp/veneer-bench-remote}")
REPS=${REPS:-5}
BIG_MIB=${BIG_MIB:-64}
SMALL_N=${SMALL_N:-4000}
LARGE_MIB=${LARGE_MIB:-1024}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
CHUNK=65536

mkdir -p "$SCRATCH/www" "$SCRATCH/nginx/tmp"
cd "$SCRATCH"
if [ ! -f www/img.sqfs ]; then
	rm -rf src
	python3 "$TOP/bench/image-corpus.py" src "$BIG_MIB" "$SMALL_N"
	"$VENEER" pack --force src -o www/img.sqfs | tail -1 | sed 's/^digest: //' > digest
fi
if [ "$LARGE_MIB" -gt 0 ] && [ ! -f www/large.sqfs ]; then
	rm -rf src-large
	python3 - src-large "$LARGE_MIB" "$SMALL_N" <<'EOF'
import os, sys
top, mib, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(os.path.join(top, "small"))
for i in range(mib // 16):
    with open(os.path.join(top, f"blob{i:03d}"), "wb") as f:
        f.write(os.urandom(16 << 20))
for i in range(n):
    with open(os.path.join(top, "small", f"f{i:05d}"), "wb") as f:
        f.write(os.urandom(2048).hex().encode())     # half compressible: far apart
EOF
	"$VENEER" pack --force src-large -o www/large.sqfs | tail -1 | sed 's/^digest: //' > digest-large
	rm -rf src-large
fi
DIGEST=$(cat digest)
mkdir -p empty mnt

# ---- nginx ----

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
NG="$SCRATCH/nginx"
USER_LINE=""
[ "$(id -u)" -eq 0 ] && USER_LINE="user root root;"
cat > "$NG/nginx.conf" <<EOF
$USER_LINE
worker_processes 2;
pid $NG/nginx.pid;
error_log $NG/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    log_format bench '\$request_method \$uri "\$http_range" \$status \$body_bytes_sent';
    client_body_temp_path $NG/tmp/body;
    proxy_temp_path $NG/tmp/proxy;
    fastcgi_temp_path $NG/tmp/fastcgi;
    uwsgi_temp_path $NG/tmp/uwsgi;
    scgi_temp_path $NG/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:$PORT;
        root $SCRATCH/www;
        access_log $NG/access.log bench;
    }
}
EOF
rm -f "$NG/nginx.pid"
"$NGINX" -p "$NG/" -c "$NG/nginx.conf" -e "$NG/error.log" -g 'daemon off;' &
cleanup() {
	"$VENEER" umount mnt 2>/dev/null || true
	[ -s "$NG/nginx.pid" ] && kill "$(cat "$NG/nginx.pid")" 2>/dev/null
	wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do [ -s "$NG/nginx.pid" ] && break; sleep 0.05; done
[ -s "$NG/nginx.pid" ] || { echo "nginx did not start:" >&2; cat "$NG/error.log" >&2; exit 1; }
URL="http://127.0.0.1:$PORT/img.sqfs"
LOG="$NG/access.log"

now() { date +%s%N; }

# log_sum: "requests bytes distinct_chunk_bytes" of the GETs logged so far
log_sum() {
	sleep 0.2		# nginx writes a line once the response is sent
	python3 - "$LOG" "$CHUNK" <<'EOF'
import re, sys
req = sent = 0
chunks = {}
for line in open(sys.argv[1]):
    m = re.match(r'(\S+) \S+ "bytes=(\d+)-(\d+)" (\d+) (\d+)$', line.strip())
    if not m or m[1] != "GET":
        continue
    req += 1
    sent += int(m[5])
    a, b, c = int(m[2]), int(m[3]), int(sys.argv[2])
    for i in range(a // c, b // c + 1):
        chunks[i] = c if i < b // c else b - i * c + 1
print(req, sent, sum(chunks.values()))
EOF
}

# one_round SOURCE CACHE_DIR: prints "big_ms small_ms"
one_round() {
	"$VENEER" mount --cache=always --cache-dir="$2" --layer "$1#$DIGEST" empty mnt
	sync
	echo 3 > /proc/sys/vm/drop_caches
	local t0 t1 t2
	t0=$(now); cat mnt/big.bin > /dev/null
	t1=$(now); cat mnt/small/* > /dev/null
	t2=$(now)
	"$VENEER" umount mnt
	echo $(((t1 - t0) / 1000000)) $(((t2 - t1) / 1000000))
}

: > local.txt
: > cold.txt
: > warm.txt
for _ in $(seq "$REPS"); do
	one_round "$SCRATCH/www/img.sqfs" "$SCRATCH/cache" >> local.txt
	rm -rf "$SCRATCH/cache"
	: > "$LOG"
	one_round "$URL" "$SCRATCH/cache" >> cold.txt
	log_sum > cold-log.txt
	one_round "$URL" "$SCRATCH/cache" >> warm.txt
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { awk -v c="$2" '{ print $c }' "$1" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b ? a / b : 0 }'; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
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
read -r req sent distinct < cold-log.txt
size=$(stat -c %s www/img.sqfs)
echo "cold round (nginx's log): $req requests, $sent bytes sent ($(ratio "$sent" "$size") x the image," \
	"$(ratio "$sent" "$distinct") x the distinct chunks sent)"

[ "$LARGE_MIB" -gt 0 ] || exit 0

# ---- part 2: the 1 GiB image ----

# split_chunks: the chunks of the GETs logged so far, as data, squashfs
# metadata and hash tree
split_chunks() {
	python3 - www/large.sqfs "$LOG" "$CHUNK" <<'EOF'
import re, sys
img, log, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(img, "rb") as f:
    sb = f.read(96)
    f.seek(-64 + 32, 2)
    tree = (int.from_bytes(f.read(8), "little"), int.from_bytes(f.read(8), "little"))
meta = (int.from_bytes(sb[64:72], "little"), int.from_bytes(sb[40:48], "little"))
n = {"data": 0, "metadata": 0, "tree": 0, "footer": 0}
for line in open(log):
    m = re.match(r'GET \S+ "bytes=(\d+)-(\d+)"', line)
    if not m:
        continue
    for c in range(int(m[1]) // chunk, int(m[2]) // chunk + 1):
        lo, hi = c * chunk, (c + 1) * chunk
        kind = "data"
        for name, (a, b) in (("metadata", meta), ("tree", tree), ("footer", (tree[1], 1 << 62))):
            if lo < b and a < hi:
                kind = name
        n[kind] += 1
print(", ".join(f"{v} {k}" for k, v in n.items()) + " chunks")
EOF
}

LDIGEST=$(cat digest-large)
LURL="http://127.0.0.1:$PORT/large.sqfs"
rm -rf "$SCRATCH/cache-large"
: > "$LOG"
t0=$(now)
"$VENEER" mount --cache=always --cache-dir="$SCRATCH/cache-large" --layer "$LURL#$LDIGEST" empty mnt
stat mnt/small > /dev/null
t1=$(now)
read -r areq asent _ < <(log_sum)
asplit=$(split_chunks)
: > "$LOG"
cat "mnt/small/$(printf f%05d $((SMALL_N / 2)))" > /dev/null
read -r rreq rsent _ < <(log_sum)
rsplit=$(split_chunks)
"$VENEER" umount mnt
lsize=$(stat -c %s www/large.sqfs)
echo "$(ratio "$lsize" 1073741824) GiB image: attach + first lookup: $areq requests, $asent bytes," \
	"$(((t1 - t0) / 1000000)) ms ($asplit)"
echo "$(ratio "$lsize" 1073741824) GiB image: one 4 KiB file cold: $rreq requests, $rsent bytes ($rsplit)"
