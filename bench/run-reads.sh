#!/usr/bin/env bash
# bench/run-reads.sh - the read rows with veneer's levers, in place, on a disk.
#
# The config suite (bench/run-config.sh) runs on a tmpfs lower: it measures
# per-request cost, and a "cold" read there never waits for a disk. The
# shared harness reads from a disk (its ext4 image on a loop device) but
# mounts one veneer variant per run, and its passthrough_ll is neither in
# place nor in veneer's configuration. This runs, side by side in one run,
# on the harness's corpus (16,000-file tree, 1 GiB file, on its ext4 image):
#
#   native                 the corpus directory itself
#   passthrough_ll-multi   libfuse's passthrough_ll in place over the corpus:
#                          -o source=MNT,cache=always,xattr,allow_other,default_permissions
#                          (veneer's in-place configuration)
#   veneer                 veneer mount MNT: in place, defaults (as root:
#                          allow_other, default_permissions, --cache=always,
#                          --opens=skip, killpriv v2)
#   veneer-pt              ... --opens=passthrough
#   veneer-uring           ... --uring (the fuse module's enable_uring is
#                          switched on for the run and put back after)
#   veneer-pt-uring        ... --opens=passthrough --uring
#
# "In place": the corpus is bind-mounted (private) on the target's mount
# point and the daemon mounts over it with LOWER == MOUNTPOINT, so it opens
# the directory before covering it.
#
# Workloads per target and round (targets visited in a rotating order);
# cold = a fresh mount (new daemon, new kernel inodes) + sync + drop_caches:
#   read_small  cold   fsb readall of the tree (every small file read once)
#   stat_after  -      fsb walkstat of the tree right after that: the first
#                      stat of every file after its data was read cold (the
#                      kernel drops a file's atime after a read it fetched,
#                      so one GETATTR per file through FUSE)
#   read_small  warm   fsb readall again on the same mount
#   seq_1g      cold   fsb seqread of big.bin, 1 MiB reads, on a new cold mount
#   seq_1g      warm   the same again right after
#   grep_r      cold   grep -r of the tree on a new cold mount (the harness's
#                      row: every file looked up and read)
#   grep_r      warm   grep -r again: the issue's form of the first stat after
#                      cold reads (a GETATTR per file, the data from the cache)
#
# Usage:  sudo VENEER=path/to/veneer bench/run-reads.sh [SCRATCH_DIR]
#         (default /tmp/veneer-bench; the corpus, fsb and passthrough_ll are
#          the harness's: if SCRATCH_DIR has none, run `bench/run.sh` once
#          with TARGETS=native REPS=1)
# Knobs: TARGETS [all six above], REPS [3], TMO [600] (per command, s),
#        OUT [SCRATCH/reads-YYYYMMDD-HHMMSS].
# Output in OUT: raw.csv (target,workload,mode,round,seconds,count,bytes),
# loadavg.txt (before the run and before each target's round), reads.md
# (medians with min-max and ratios to native, higher is better).
set -uo pipefail
export LC_ALL=C

SCRATCH=${1:-/tmp/veneer-bench}
TARGETS=${TARGETS:-"native passthrough_ll-multi veneer veneer-pt veneer-uring veneer-pt-uring"}
REPS=${REPS:-3}
TMO=${TMO:-600}
OUTD=${OUT:-$SCRATCH/reads-$(date +%Y%m%d-%H%M%S)}
FSIMG=$SCRATCH/ext4.img
FSMNT=$SCRATCH/fs
CORPUS=$FSMNT/corpus
FSB=$SCRATCH/bin/fsb
PT=$SCRATCH/bin/passthrough_ll
MNT=$SCRATCH/mnt-reads

say() { printf 'bench-reads: [%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { say "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
[ -n "${VENEER:-}" ] && [ -x "$VENEER" ] || die "VENEER must name the veneer binary to measure"
[ -f "$FSIMG" ] && [ -x "$FSB" ] && [ -x "$PT" ] ||
	die "no corpus, fsb or passthrough_ll in $SCRATCH: run bench/run.sh with TARGETS=native REPS=1 first"
for t in $TARGETS; do
	case $t in native | passthrough_ll-multi | veneer | veneer-pt | veneer-uring | veneer-pt-uring) ;;
	*) die "unknown target: $t" ;; esac
done
mkdir -p "$OUTD" "$MNT" "$FSMNT" || die "cannot create $OUTD"
ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null # passthrough_ll: an fd per inode

is_mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }
fstype_at() { awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++); t = $(i + 1) } END { print t }' /proc/self/mountinfo; }

URING_PARAM=/sys/module/fuse/parameters/enable_uring
URING_OLD=
FSLOOP=
if [[ " $TARGETS " == *-uring* ]]; then
	URING_OLD=$(cat "$URING_PARAM" 2>/dev/null) || die "no FUSE over io_uring in this kernel ($URING_PARAM)"
	echo 1 >"$URING_PARAM" || die "cannot switch $URING_PARAM on"
	say "switched $URING_PARAM on for the run (it was $URING_OLD; put back at the end)"
fi

umount_t() { # target: the daemon's mount, then the bind under it
	local m=$MNT/$1
	[ "$1" = native ] && return 0
	case $(fstype_at "$m") in fuse.*) fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m" ;; esac
	for _ in $(seq 50); do case $(fstype_at "$m") in fuse.*) sleep 0.1 ;; *) break ;; esac; done
	[ "$(fstype_at "$m")" = ext4 ] && { umount "$m" 2>/dev/null || umount -l "$m"; }
	sleep 0.2 # the daemon exits after the unmount
}
cleanup() {
	trap - EXIT INT TERM
	local t
	for t in $TARGETS; do umount_t "$t"; done
	if [ -n "$FSLOOP" ]; then
		umount "$FSMNT" 2>/dev/null || umount -l "$FSMNT"
		losetup -d "$FSLOOP" 2>/dev/null
	fi
	[ -z "$URING_OLD" ] || echo "$URING_OLD" >"$URING_PARAM"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM

if ! is_mounted "$FSMNT"; then
	FSLOOP=$(losetup -f --show --direct-io=on "$FSIMG") || die "losetup $FSIMG"
	mount -t ext4 "$FSLOOP" "$FSMNT" || die "mount $FSIMG"
fi
[ -d "$CORPUS/tree" ] && [ -f "$CORPUS/big.bin" ] || die "corpus missing under $FSMNT"

# veneer without -f and passthrough_ll without -f return once the mount is up
mount_t() {
	local t=$1 m=$MNT/$1
	[ "$t" = native ] && return 0
	mkdir -p "$m"
	mount --bind "$CORPUS" "$m" && mount --make-private "$m" || return 1
	case $t in
	passthrough_ll-multi) "$PT" -o "source=$m,cache=always,xattr,allow_other,default_permissions" "$m" ;;
	veneer) "$VENEER" mount "$m" ;;
	veneer-pt) "$VENEER" mount --opens=passthrough "$m" ;;
	veneer-uring) "$VENEER" mount --uring "$m" ;;
	veneer-pt-uring) "$VENEER" mount --opens=passthrough --uring "$m" ;;
	esac >>"$OUTD/$t.log" 2>&1 || return 1
	case $(fstype_at "$m") in fuse.*) stat "$m/." >/dev/null ;; *) return 1 ;; esac
}
root_of() { if [ "$1" = native ]; then echo "$CORPUS"; else echo "$MNT/$1"; fi; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; sleep 0.2; echo 3 >/proc/sys/vm/drop_caches; }
cold() { umount_t "$1"; mount_t "$1" || die "mount of $1 failed (see $OUTD/$1.log)"; drop_caches; }
# fsb prints "seconds count bytes"
fsb_t() { # target workload mode round fsb-args...
	local t=$1 w=$2 m=$3 r=$4 o
	shift 4
	o=$(timeout -k 5 "$TMO" "$FSB" "$@" 2>>"$OUTD/run.log") || { say "   $t $w $m round $r failed"; o="NA NA NA"; }
	set -- $o
	echo "$t,$w,$m,$r,$1,$2,$3" >>"$OUTD/raw.csv"
}
grep_t() { # target mode round dir: grep -r for the harness's needle (status 1: no match)
	local s=$EPOCHREALTIME rc n
	timeout -k 5 "$TMO" grep -r -l -F XYZZY_NEEDLE "$4" >"$OUTD/grep.out" 2>>"$OUTD/run.log"
	rc=$?
	n=$(wc -l <"$OUTD/grep.out")
	if [ "$rc" -le 1 ]; then
		echo "$1,grep_r,$2,$3,$(awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.6f", b - a }'),$n,0" >>"$OUTD/raw.csv"
	else
		say "   $1 grep_r $2 round $3 failed"
		echo "$1,grep_r,$2,$3,NA,NA,NA" >>"$OUTD/raw.csv"
	fi
}
round_t() { # target round
	local t=$1 r=$2 R
	R=$(root_of "$t")
	cold "$t"
	fsb_t "$t" read_small cold "$r" readall "$R/tree"
	fsb_t "$t" stat_after - "$r" walkstat "$R/tree"
	fsb_t "$t" read_small warm "$r" readall "$R/tree"
	cold "$t"
	fsb_t "$t" seq_1g cold "$r" seqread "$R/big.bin" 1024
	fsb_t "$t" seq_1g warm "$r" seqread "$R/big.bin" 1024
	cold "$t"
	grep_t "$t" cold "$r" "$R/tree"
	grep_t "$t" warm "$r" "$R/tree"
	umount_t "$t"
}

echo "target,workload,mode,round,seconds,count,bytes" >"$OUTD/raw.csv"
echo "# before the run: $(cat /proc/loadavg)" >"$OUTD/loadavg.txt"
echo "$VENEER ($("$VENEER" --version 2>&1 | head -1)); kernel $(uname -r); $(nproc) CPUs" >"$OUTD/versions.txt"
say "targets: $TARGETS; $REPS rounds; output: $OUTD"
read -r -a targets <<<"$TARGETS"
for r in $(seq "$REPS"); do
	k=$(((r - 1) % ${#targets[@]}))
	for t in "${targets[@]:k}" "${targets[@]:0:k}"; do
		echo "round $r $t: $(cat /proc/loadavg)" >>"$OUTD/loadavg.txt"
		say "== round $r/$REPS: $t (loadavg $(cut -d' ' -f1 /proc/loadavg))"
		round_t "$t" "$r"
	done
done
echo "# after the run: $(cat /proc/loadavg)" >>"$OUTD/loadavg.txt"

# ------------------------------------------------------------------ report
# every target must have read the same files and bytes as native
BAD=$(awk -F, 'NR > 1 && $1 == "native" { c[$2 " " $3] = $6 " " $7 }
	NR > 1 && $1 != "native" && ($2 " " $3) in c && c[$2 " " $3] != $6 " " $7 { print $1 " " $2 " " $3 " round " $4 }' "$OUTD/raw.csv" | sort -u)
[ -z "$BAD" ] || say "COUNTS DIFFER FROM NATIVE: $BAD"
stats() { # target workload mode -> median min max
	awk -F, -v t="$1" -v w="$2" -v m="$3" '$1 == t && $2 == w && $3 == m && $5 != "NA" { print $5 }' "$OUTD/raw.csv" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[1], v[NR] }'
}
{
	echo "# read rows with veneer's levers, in place on the harness's ext4 corpus ($REPS rounds, medians)"
	echo
	echo "- $(cat "$OUTD/versions.txt"); corpus: $(find "$CORPUS/tree" -type f | wc -l) files, big.bin $(($(stat -c %s "$CORPUS/big.bin") >> 20)) MiB"
	echo "- file and byte counts against native's: $([ -z "$BAD" ] && echo "all equal" || echo "**DIFFER**: $BAD")"
	echo "- cell: median seconds (min-max), then native time / this time (higher is better); seq_1g also in MB/s"
	echo
	hdr="| workload | mode |" sep="|---|---|"
	for t in $TARGETS; do hdr+=" $t |"; sep+="---|"; done
	echo "$hdr"
	echo "$sep"
	for wm in "read_small cold" "stat_after -" "read_small warm" "seq_1g cold" "seq_1g warm" "grep_r cold" "grep_r warm"; do
		set -- $wm
		line="| $1 | $2 |"
		read -r nat _ <<<"$(stats native "$1" "$2")"
		for t in $TARGETS; do
			read -r med lo hi <<<"$(stats "$t" "$1" "$2")"
			if [ -z "${med:-}" ]; then line+=" - |"; continue; fi
			line+=$(awk -v v="$med" -v lo="$lo" -v hi="$hi" -v n="${nat:-}" -v w="$1" 'BEGIN {
				printf " %.3f (%.3f-%.3f)", v, lo, hi
				if (w == "seq_1g") printf " %.0f MB/s", 1073741824 / v / 1e6
				if (n != "") printf " %.2f×", n / v
				printf " |" }')
		done
		echo "$line"
	done
	echo
	echo "Load (1, 5, 15 min) per round: loadavg.txt. Raw rounds: raw.csv."
} >"$OUTD/reads.md"
cat "$OUTD/reads.md"
say "report: $OUTD/reads.md"
