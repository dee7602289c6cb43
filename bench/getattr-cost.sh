#!/usr/bin/env bash
# bench/getattr-cost.sh - what the first stat after a cold read costs veneer
# when the daemon keeps fewer descriptors than there are files.
#
# A tmpfs lower of N files of 4 KiB in directories of 1000; veneer mounted
# in place over it (the in-place defaults: --cache=always, --opens=skip),
# as the harness's read rows are measured, under a hard
# RLIMIT_NOFILE of NOFILE (the node cache keeps half of it), so most nodes
# have no kept descriptor when their GETATTR comes.  Per binary and round
# (A and B alternate, a fresh mount each time): read every file (open, read,
# close: the kernel then drops the inode's atime and the next stat asks the
# daemon), then lstat every file, timed; /proc/loadavg before each round.
# Then per binary, the daemon under strace -c -f from launch, once for the
# read pass alone and once for read and stat: the difference is what the
# stat pass costs in system calls.
#
# Usage:  sudo A=old/veneer B=new/veneer bench/getattr-cost.sh [SCRATCH_DIR]
# Knobs: N [20000], NOFILE [4096], REPS [5].
set -uo pipefail
export LC_ALL=C

SCRATCH=${1:-/tmp/veneer-getattr}
N=${N:-20000}
NOFILE=${NOFILE:-4096}
REPS=${REPS:-5}

say() { printf 'bench-getattr: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
{ [ -x "${A:-}" ] && [ -x "${B:-}" ]; } || die "A and B must name the two veneer binaries"

LOWER=$SCRATCH/lower MNT=$SCRATCH/lower
mkdir -p "$LOWER" || die "mkdir $SCRATCH"
mountpoint -q "$LOWER" || mount -t tmpfs tmpfs "$LOWER" || die "tmpfs on $LOWER"
python3 - "$LOWER" "$N" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%03d" % (i // 1000))
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "f%d" % i)
    if not os.path.exists(p):
        with open(p, "wb") as f:
            f.write(b"x" * 4096)
EOF

PID=
mount_one() {	# $1 binary, $2 strace output file (optional: trace the daemon from launch)
	if [ -n "${2:-}" ]; then	# attaching later may be refused (no CAP_SYS_PTRACE)
		strace -c -f -o "$2" prlimit --nofile="$NOFILE:$NOFILE" "$1" mount -f "$LOWER" \
			>"$SCRATCH/log" 2>&1 &
	else
		prlimit --nofile="$NOFILE:$NOFILE" "$1" mount -f "$LOWER" >"$SCRATCH/log" 2>&1 &
	fi
	PID=$!
	for _ in $(seq 200); do
		grep -q " $MNT fuse.veneer " /proc/self/mounts && return 0
		sleep 0.05
	done
	die "mount did not appear"
}
umount_one() {
	grep -q " $MNT fuse.veneer " /proc/self/mounts && { fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"; }
	wait "$PID" 2>/dev/null
}
pass() {	# read: open, read, close every file; stat: lstat every file, prints seconds
	python3 - "$MNT" "$1" <<'PY'
import os, sys, time
root, what = sys.argv[1], sys.argv[2]
paths = [os.path.join(r, f) for r, _, fs in os.walk(root) for f in sorted(fs)]
t = time.monotonic()
for p in paths:
    if what == "read":
        with open(p, "rb") as f:
            f.read()
    else:
        os.lstat(p)
print("%.3f" % (time.monotonic() - t))
PY
}
round() {	# $1 label, $2 binary
	mount_one "$2"
	pass read >/dev/null
	printf '%s stat %s s  load %s\n' "$1" "$(pass stat)" "$(cut -d' ' -f1-3 /proc/loadavg)"
	umount_one
}
calls() {	# total system calls in an strace -c summary
	awk '$NF == "total" { print $(NF-2) }' "$1"
}
count() {	# $1 label, $2 binary: the daemon's system calls over the stat pass
	mount_one "$2" "$SCRATCH/strace-$1-read"
	pass read >/dev/null
	umount_one
	mount_one "$2" "$SCRATCH/strace-$1-stat"
	pass read >/dev/null
	pass stat >/dev/null
	umount_one
	local a b
	a=$(calls "$SCRATCH/strace-$1-read") b=$(calls "$SCRATCH/strace-$1-stat")
	printf '%s system calls: read pass %s, read+stat passes %s, stat pass %s (%s per file)\n' \
		"$1" "$a" "$b" $((b - a)) "$(echo "scale=2; ($b - $a) / $N" | bc)"
	say "$1 (read+stat passes), by call:"
	head -16 "$SCRATCH/strace-$1-stat" >&2
}

for r in $(seq "$REPS"); do
	if [ $((r % 2)) = 1 ]; then round A "$A"; round B "$B"; else round B "$B"; round A "$A"; fi
done
count A "$A"
count B "$B"
umount "$LOWER"
