#!/usr/bin/env bash
# bench/run-trace.sh - what the built-in trace filter costs.
#
# veneer always loads its trace filter (highest altitude); --no-trace leaves
# it out. This measures, side by side in one run, on the shared harness's
# corpus (16,000-file tree, 1 GiB file, on its ext4 image):
#
#   native           the corpus directory itself
#   veneer-notrace   veneer in place, --no-trace (the filter left out)
#   veneer           veneer in place, defaults (filter loaded, no watcher, no file)
#   veneer-watch     as veneer, plus a live watcher: `veneer trace MNT --json >/dev/null`
#   veneer-file      as veneer, plus --trace FILE (FILE on the scratch directory's
#                    filesystem, not on the corpus; removed after each mount)
#
# "In place" as bench/veneer-inplace does it, as root: the corpus is
# bind-mounted on the target's mount point and `veneer mount -f --cache=always
# MNT` mounts over it with LOWER == MOUNTPOINT (in-place defaults: allow_other,
# default_permissions, --opens=skip). The mount is not moved afterwards (as
# bench/veneer-inplace does), because the control socket that `veneer trace`
# needs is named after the path veneer was mounted on.
#
# Workloads, per target and round (targets visited in a rotating order).
# Modes: cold = fresh mount + drop_caches; fresh = fresh mount over a lower
# whose caches are warm (every request reaches the daemon, none waits for the
# disk: the mode most sensitive to per-request cost); warm = the same again
# right away on the same mount (the kernel's caches answer most of it).
#   read_small  cold, warm, fresh   fsb readall of the tree
#   stat_tree   fresh, warm         fsb walkstat of the tree
#   fio_psync   fresh, warm         fio randread 4 KiB psync, 2 jobs, FIO_RT s on big.bin:
#                                   fresh (veneer only) right after mounting, warm after
#                                   big.bin was read through the mount (page cache, as
#                                   the harness's row (e))
#   create_10k, unlink_10k   fsb create / unlink of WRITE_N files of WRITE_SIZE bytes
#                            in a fresh directory of the mount (fresh mount, sync before each)
#
# Usage:  sudo VENEER=path/to/veneer bench/run-trace.sh [SCRATCH_DIR]
#         (default SCRATCH_DIR: /tmp/veneer-bench; normally started by
#          `bench/run.sh` with SUITE=trace)
# The corpus is the harness's: if SCRATCH_DIR has none, the harness is run
# once with TARGETS=native REPS=1 to make it.
# Knobs (environment; defaults in brackets):
#   VENEER             the veneer binary to measure (required)
#   TARGETS ["native veneer-notrace veneer veneer-watch veneer-file"]
#   REPS [5]           rounds (median and per-round ratios reported)
#   FIO_RT [3]         seconds per fio run
#   WRITE_N [10000], WRITE_SIZE [4096]
#   TMO [600]          per-command timeout (s)
#   OUT [SCRATCH/trace-YYYYMMDD-HHMMSS]
#   REPORT_ONLY [0]    1 = no measurement: rebuild trace-DATE.md from the files in OUT
set -uo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$(dirname "$REPO")/shared/bench/run.sh}
SCRATCH=${1:-${SCRATCH:-/tmp/veneer-bench}}
TARGETS=${TARGETS:-"native veneer-notrace veneer veneer-watch veneer-file"}
REPS=${REPS:-5}
FIO_RT=${FIO_RT:-3}
WRITE_N=${WRITE_N:-10000}
WRITE_SIZE=${WRITE_SIZE:-4096}
TMO=${TMO:-600}
DAY=$(date +%Y%m%d)
OUTD=${OUT:-$SCRATCH/trace-$(date +%Y%m%d-%H%M%S)}

say() { printf 'bench-trace: [%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
[ -n "${VENEER:-}" ] && [ -x "$VENEER" ] || die "VENEER must name the veneer binary to measure"
case $SCRATCH in /*) ;; *) die "SCRATCH_DIR must be an absolute path: $SCRATCH" ;; esac
for t in $TARGETS; do
	case $t in native | veneer-notrace | veneer | veneer-watch | veneer-file) ;; *) die "unknown target: $t" ;; esac
done
case " $TARGETS " in *" veneer-notrace "*) ;; *) die "TARGETS must include veneer-notrace (the reference of the ratios)" ;; esac
command -v fio >/dev/null || die "fio is missing (bench/run.sh installs it)"
mkdir -p "$OUTD" || die "cannot create $OUTD"
T0=$EPOCHREALTIME
LOGD=$OUTD/log
mkdir -p "$LOGD"

if [ "${REPORT_ONLY:-0}" != 1 ]; then
FSIMG=$SCRATCH/ext4.img
FSMNT=$SCRATCH/fs
CORPUS=$FSMNT/corpus
FSB=$SCRATCH/bin/fsb
MNT=$SCRATCH/mnt-trace
TFILE=$OUTD/tracefile.jsonl
mkdir -p "$MNT" "$FSMNT"

if ! [ -f "$FSIMG" ] || ! [ -x "$FSB" ]; then
	[ -f "$SHARED_BENCH" ] || die "no corpus in $SCRATCH and no harness at $SHARED_BENCH to make one"
	say "no corpus in $SCRATCH: running the harness once (TARGETS=native REPS=1) to make it"
	TARGETS=native REPS=1 OUT=$OUTD/corpus-run bash "$SHARED_BENCH" "$SCRATCH" >"$LOGD/corpus-run.log" 2>&1 ||
		die "the harness failed (see $LOGD/corpus-run.log)"
fi

FSLOOP=
declare -A DPID=() MOUNTED=() BOUND=() WPID=()
is_mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }
fstype_at() { awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++); t = $(i + 1) } END { print t }' /proc/self/mountinfo; }
wait_pid() { # pid tenths -> 0 if it exited (status in WAITRC)
	local i
	for i in $(seq "$2"); do
		if ! kill -0 "$1" 2>/dev/null; then wait "$1" 2>/dev/null; WAITRC=$?; return 0; fi
		sleep 0.1
	done
	return 1
}
umount_t() {
	local t=$1 m=${MOUNTED[$1]:-}
	[ -n "$m" ] || return 0
	if [ "$(fstype_at "$m")" = fuse.veneer ]; then
		fusermount3 -u "$m" 2>>"$LOGD/run.log" || umount "$m" 2>>"$LOGD/run.log" || umount -l "$m" 2>>"$LOGD/run.log"
	fi
	if [ -n "${DPID[$t]:-}" ]; then
		if wait_pid "${DPID[$t]}" 50; then
			[ "$WAITRC" = 0 ] || say "   $t: veneer exited with status $WAITRC (log: $LOGD/$t.log)"
		else
			say "   $t: veneer still running 5 s after the unmount; killing it"
			kill "${DPID[$t]}" 2>/dev/null
			wait_pid "${DPID[$t]}" 30 || { kill -9 "${DPID[$t]}" 2>/dev/null; wait "${DPID[$t]}" 2>/dev/null; }
		fi
		unset "DPID[$t]"
	fi
	if [ -n "${WPID[$t]:-}" ]; then
		# the daemon closes the stream when the mount goes away
		if wait_pid "${WPID[$t]}" 50; then
			[ "$WAITRC" = 0 ] || say "   $t: the watcher exited with status $WAITRC (log: $LOGD/watcher.log)"
		else
			say "   $t: the watcher did not exit after the unmount; stopping it"
			kill "${WPID[$t]}" 2>/dev/null
			wait_pid "${WPID[$t]}" 80 || { kill -9 "${WPID[$t]}" 2>/dev/null; wait "${WPID[$t]}" 2>/dev/null; }
		fi
		unset "WPID[$t]"
	fi
	if [ -n "${BOUND[$t]:-}" ] && [ "$(fstype_at "$m")" = ext4 ]; then
		umount "$m" 2>>"$LOGD/run.log" || umount -l "$m" 2>>"$LOGD/run.log"
	fi
	unset "BOUND[$t]" "MOUNTED[$t]"
	if [ "$t" = veneer-file ] && [ -f "$TFILE" ]; then
		echo "$(wc -l <"$TFILE") records, $(stat -c %s "$TFILE") bytes, $(grep -c '"dropped"' "$TFILE") drop notices" >>"$LOGD/tracefile.log"
		rm -f "$TFILE"
	fi
}
cleanup() {
	trap - EXIT INT TERM
	local t
	for t in "${!MOUNTED[@]}"; do umount_t "$t"; done
	rm -rf "$CORPUS/_w"
	if [ -n "$FSLOOP" ]; then
		umount "$FSMNT" 2>/dev/null || umount -l "$FSMNT"
		losetup -d "$FSLOOP" 2>/dev/null
	fi
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM

if ! is_mounted "$FSMNT"; then
	FSLOOP=$(losetup -f --show --direct-io=on "$FSIMG") || die "losetup $FSIMG"
	mount -t ext4 "$FSLOOP" "$FSMNT" || die "mount $FSIMG"
fi
[ -d "$CORPUS/tree" ] && [ -f "$CORPUS/big.bin" ] || die "corpus missing under $FSMNT"
BIG_MIB=$(($(stat -c %s "$CORPUS/big.bin") >> 20))
rm -rf "$CORPUS/_w"

mount_t() {
	local t=$1 m=$MNT/$1 i
	[ "$t" = native ] && return 0
	mkdir -p "$m"
	mount --bind "$CORPUS" "$m" || return 1
	BOUND[$t]=1
	MOUNTED[$t]=$m
	mount --make-private "$m" || return 1
	local extra=()
	case $t in
	veneer-notrace) extra=(--no-trace) ;;
	veneer-file) rm -f "$TFILE"; extra=(--trace "$TFILE") ;;
	esac
	"$VENEER" mount -f --cache=always "${extra[@]}" "$m" >>"$LOGD/$t.log" 2>&1 &
	DPID[$t]=$!
	for i in $(seq 200); do
		if [ "$(fstype_at "$m")" = fuse.veneer ] && stat "$m/." >/dev/null 2>&1; then break; fi
		kill -0 "${DPID[$t]}" 2>/dev/null || break
		sleep 0.05
	done
	if [ "$(fstype_at "$m")" != fuse.veneer ]; then
		say "mount of $t failed (see $LOGD/$t.log)"
		return 1
	fi
	if [ "$t" = veneer-watch ]; then
		"$VENEER" trace "$m" --json >/dev/null 2>>"$LOGD/watcher.log" &
		WPID[$t]=$!
		sleep 0.3
		kill -0 "${WPID[$t]}" 2>/dev/null || { say "the watcher did not start (see $LOGD/watcher.log)"; return 1; }
	fi
}
root_of() { if [ "$1" = native ]; then echo "$CORPUS"; else echo "$MNT/$1"; fi; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; sleep 0.2; echo 3 >/proc/sys/vm/drop_caches; }
fresh() { umount_t "$1"; mount_t "$1"; }
cold() { fresh "$1" || return 1; drop_caches; }
fio_rand() { # root -> IOPS
	local out
	out=$(timeout -k 5 "$TMO" fio --name=rand4k --filename="$1/big.bin" --readonly --rw=randread --bs=4k \
		--ioengine=psync --numjobs=2 --size="${BIG_MIB}M" --time_based --runtime="$FIO_RT" --invalidate=0 \
		--group_reporting --output-format=terse --terse-version=3 2>>"$LOGD/run.log") || return 1
	out=$(awk -F';' 'NF > 8 { print $8; exit }' <<<"$out")
	[ -n "$out" ] && [ "$out" != 0 ] || return 1
	echo "$out"
}
# fsb prints "seconds count bytes"; count and bytes go to the check file
fsb_t() { # target workload mode round fsb-args...
	local t=$1 w=$2 m=$3 r=$4 o
	shift 4
	if o=$(timeout -k 5 "$TMO" "$FSB" "$@" 2>>"$LOGD/run.log"); then
		set -- $o
		rec "$t" "$w" "$m" "$r" "$1" s
		echo "$t,$w,$m,$r,$2,$3" >>"$CHK"
	else
		rec "$t" "$w" "$m" "$r" "" s
	fi
}
CSV=$OUTD/trace-$DAY.csv
CHK=$OUTD/counts-$DAY.csv
echo "date,target,workload,mode,rep,value,unit" >"$CSV"
echo "target,workload,mode,rep,count,bytes" >"$CHK"
rec() { echo "$DAY,$1,$2,$3,$4,${5:-NA},$6" >>"$CSV"; [ -n "${5:-}" ] || say "   $1 $2 $3 round $4 failed"; }

round_t() { # target round
	local t=$1 r=$2 R
	R=$(root_of "$t")
	if cold "$t"; then
		fsb_t "$t" read_small cold "$r" readall "$R/tree"
		fsb_t "$t" read_small warm "$r" readall "$R/tree"
	else rec "$t" read_small cold "$r" "" s; rec "$t" read_small warm "$r" "" s; fi
	# fresh: a new mount over a lower whose page, dentry and inode caches are
	# warm (just read): every request reaches the daemon and none waits for the disk
	if fresh "$t"; then
		fsb_t "$t" stat_tree fresh "$r" walkstat "$R/tree"
		fsb_t "$t" stat_tree warm "$r" walkstat "$R/tree"
	else rec "$t" stat_tree fresh "$r" "" s; rec "$t" stat_tree warm "$r" "" s; fi
	if fresh "$t"; then
		fsb_t "$t" read_small fresh "$r" readall "$R/tree"
	else rec "$t" read_small fresh "$r" "" s; fi
	cat "$CORPUS/big.bin" >/dev/null # the lower's page cache holds big.bin
	if fresh "$t"; then
		[ "$t" = native ] || rec "$t" fio_psync fresh "$r" "$(fio_rand "$R")" IOPS
		cat "$R/big.bin" >/dev/null
		rec "$t" fio_psync warm "$r" "$(fio_rand "$R")" IOPS
	else
		[ "$t" = native ] || rec "$t" fio_psync fresh "$r" "" IOPS
		rec "$t" fio_psync warm "$r" "" IOPS
	fi
	if fresh "$t"; then
		rm -rf "$R/_w"
		sync
		fsb_t "$t" create_10k - "$r" create "$R/_w" "$WRITE_N" "$WRITE_SIZE"
		sync
		fsb_t "$t" unlink_10k - "$r" unlink "$R/_w" "$WRITE_N"
		rm -rf "$R/_w"
	else rec "$t" create_10k - "$r" "" s; rec "$t" unlink_10k - "$r" "" s; fi
	umount_t "$t"
}

RAN=()
for t in $TARGETS; do
	if mount_t "$t"; then RAN+=("$t"); else say "== $t: cannot mount, skipped (log: $LOGD/$t.log)"; fi
	umount_t "$t"
done
n=${#RAN[@]}
say "targets: ${RAN[*]}; $REPS rounds; veneer: $VENEER ($("$VENEER" --version 2>&1 | head -1)); output: $OUTD"
: >"$OUTD/load.txt"
echo "$VENEER ($("$VENEER" --version 2>&1 | head -1))" >"$OUTD/veneer.txt"
echo "$SCRATCH (the shared harness's: $(find "$CORPUS/tree" -type f | wc -l) files, big.bin $BIG_MIB MiB) on its ext4 image" >"$OUTD/corpus.txt"
for r in $(seq "$REPS"); do
	for ((i = 0; i < n; i++)); do
		t=${RAN[$(((i + r - 1) % n))]} # the order rotates by one each round
		l=$(cut -d' ' -f1 /proc/loadavg)
		echo "$t $l" >>"$OUTD/load.txt"
		say "== round $r/$REPS: $t (loadavg $l)"
		round_t "$t" "$r"
	done
done
awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f\n", b - a }' >"$OUTD/wall.txt"
else # REPORT_ONLY=1: the report again from the files of the run in OUT
	[ -n "${OUT:-}" ] || die "REPORT_ONLY=1 needs OUT=the directory of an earlier run"
	CSV=$(ls -t "$OUTD"/trace-*.csv 2>/dev/null | head -1)
	[ -n "$CSV" ] || die "no trace-*.csv in $OUTD"
	DAY=$(basename "$CSV" .csv)
	DAY=${DAY#trace-}
	CHK=$OUTD/counts-$DAY.csv
	REPS=$(awk -F, 'NR > 1 { print $5 }' "$CSV" | sort -n | tail -1)
	WRITE_N=$(awk -F, '$2 == "create_10k" { print $5; exit }' "$CHK")
	RAN=()
	for t in $TARGETS; do grep -q "^[^,]*,$t," "$CSV" && RAN+=("$t"); done
fi
declare -A LOAD=()
while read -r t l; do LOAD[$t]="${LOAD[$t]:+${LOAD[$t]} }$l"; done < <(cat "$OUTD/load.txt" 2>/dev/null)

# ------------------------------------------------------------------ checks
# every target must have seen the same files and bytes as native
BAD=$(awk -F, 'NR > 1 && $1 == "native" { c[$2 " " $3] = $5 " " $6 }
	NR > 1 && $1 != "native" && ($2 " " $3) in c && c[$2 " " $3] != $5 " " $6 { print $1 " " $2 " " $3 " round " $4 ": " $5 " " $6 " (native " c[$2 " " $3] ")" }' "$CHK" |
	sort -u)
[ -z "$BAD" ] || say "COUNTS DIFFER FROM NATIVE: $BAD"

# ------------------------------------------------------------------ report
SUM=$OUTD/summary.txt
# target workload mode median min max n unit
tail -n +2 "$CSV" | awk -F, '$6 != "NA"' | sort -t, -k2,2 -k3,3 -k4,4 -k6,6g |
	awk -F, 'function flush() { if (n) { m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2; print key, m, v[1], v[n], n, u } }
	{ k = $2 " " $3 " " $4; if (k != key) { flush(); key = k; n = 0 } v[++n] = $6; u = $7 } END { flush() }' >"$SUM"
# per-round ratios against veneer-notrace, as cost: time / time_ref, or IOPS_ref / IOPS
# (1.05 = 5% slower than without the trace filter); target workload mode median min max n
RAT=$OUTD/ratios.txt
tail -n +2 "$CSV" | awk -F, '$6 != "NA" { v[$2 "," $3 "," $4 "," $5] = $6; u[$3 "," $4] = $7; t[$2] = 1; w[$3 "," $4] = 1; r[$5] = 1 }
	END { for (tt in t) if (tt != "native" && tt != "veneer-notrace") for (ww in w) for (rr in r) {
		a = v[tt "," ww "," rr]; b = v["veneer-notrace," ww "," rr]
		if (a == "" || b == "" || a == 0 || b == 0) continue
		x = (u[ww] == "s") ? a / b : b / a
		split(ww, p, ","); print tt, p[1], p[2], x } }' | sort -k1,1 -k2,2 -k3,3 -k4,4g |
	awk 'function flush() { if (n) { m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2; print key, m, v[1], v[n], n } }
	{ k = $1 " " $2 " " $3; if (k != key) { flush(); key = k; n = 0 } v[++n] = $4 } END { flush() }' >"$RAT"
get() { # target workload mode field (4 median, 5 min, 6 max, 7 n, 8 unit)
	awk -v k="$1 $2 $3" -v f="$4" '$1 " " $2 " " $3 == k { print $f; exit }' "$SUM"
}
getr() { # target workload mode field (4 median, 5 min, 6 max, 7 n)
	awk -v k="$1 $2 $3" -v f="$4" '$1 " " $2 " " $3 == k { print $f; exit }' "$RAT"; }
fmt() {
	awk -v v="$1" -v u="$2" 'BEGIN { if (u == "s") { if (v < 1) printf "%.3g ms", v * 1000; else printf "%.3g s", v }
		else if (u == "IOPS") { if (v >= 1e6) printf "%.2fM IOPS", v / 1e6; else printf "%.1fk IOPS", v / 1e3 } }'
}
ROWS="stat_tree:fresh:stat every entry of the tree
stat_tree:warm:stat every entry of the tree
read_small:cold:read every small file
read_small:fresh:read every small file
read_small:warm:read every small file
fio_psync:fresh:fio randread 4 KiB psync, 2 jobs, ${FIO_RT} s
fio_psync:warm:fio randread 4 KiB psync, 2 jobs, ${FIO_RT} s
create_10k:-:create+write+close $WRITE_N x $WRITE_SIZE B
unlink_10k:-:unlink those $WRITE_N files"
medians() {
	local hdr="| workload | mode |" sep="|---|---|" t w m label line v u nat
	for t in "${RAN[@]}"; do hdr+=" $t |"; sep+="---|"; done
	echo "$hdr"
	echo "$sep"
	while IFS=: read -r w m label; do
		line="| $label | $m |"
		nat=$(get native "$w" "$m" 4)
		for t in "${RAN[@]}"; do
			v=$(get "$t" "$w" "$m" 4)
			u=$(get "$t" "$w" "$m" 8)
			if [ -z "$v" ]; then line+=" - |"; continue; fi
			line+=" $(fmt "$v" "$u")"
			[ -n "$nat" ] && line+=$(awk -v v="$v" -v n="$nat" -v u="$u" 'BEGIN { printf " (%.2f×)", (u == "s") ? n / v : v / n }')
			line+=" |"
		done
		echo "$line"
	done <<<"$ROWS"
}
ratios() {
	local hdr="| workload | mode | noise: veneer-notrace spread |" sep="|---|---|---|" t w m label line lo hi med
	for t in veneer veneer-watch veneer-file; do
		case " ${RAN[*]} " in *" $t "*) hdr+=" $t / notrace |"; sep+="---|" ;; esac
	done
	echo "$hdr"
	echo "$sep"
	while IFS=: read -r w m label; do
		med=$(get veneer-notrace "$w" "$m" 4)
		[ -n "$med" ] || continue
		line="| $label | $m | $(awk -v v="$med" -v lo="$(get veneer-notrace "$w" "$m" 5)" -v hi="$(get veneer-notrace "$w" "$m" 6)" 'BEGIN { printf "±%.0f%%", 50 * (hi - lo) / v }') |"
		for t in veneer veneer-watch veneer-file; do
			case " ${RAN[*]} " in *" $t "*) ;; *) continue ;; esac
			med=$(getr "$t" "$w" "$m" 4)
			if [ -z "$med" ]; then line+=" - |"; continue; fi
			lo=$(getr "$t" "$w" "$m" 5)
			hi=$(getr "$t" "$w" "$m" 6)
			line+=$(awk -v m="$med" -v lo="$lo" -v hi="$hi" 'BEGIN { printf " %.2f (%.2f-%.2f)%s |", m, lo, hi, (lo <= 1 && hi >= 1) ? "" : " *" }')
		done
		echo "$line"
	done <<<"$ROWS"
}
MD=$OUTD/trace-$DAY.md
{
	echo "# veneer trace filter cost $DAY"
	echo
	echo "- $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; fio $(fio --version)"
	echo "- veneer: $(cat "$OUTD/veneer.txt"), in place as root over a bind of the corpus: \`veneer mount -f --cache=always [--no-trace | --trace FILE] MNT\` (allow_other, default_permissions, --opens=skip); veneer-watch adds \`veneer trace MNT --json >/dev/null\` started right after the mount"
	echo "- corpus: $(cat "$OUTD/corpus.txt"); trace file on $(df -PT "$OUTD" | awk 'NR == 2 { print $2 }') ($OUTD)"
	echo "- $REPS rounds, the order of the targets rotated by one each round; 1-minute load average at the start of each target's round:"
	for t in "${RAN[@]}"; do echo "  - $t: ${LOAD[$t]:-}"; done
	echo "- wall time: $(cat "$OUTD/wall.txt" 2>/dev/null) s"
	echo "- file and byte counts of every fsb run against native's: $([ -z "$BAD" ] && echo "all equal" || echo "**DIFFER**: $BAD")"
	[ -f "$LOGD/tracefile.log" ] && echo "- trace file per mount of veneer-file (records, bytes, drop notices): $(paste -sd';' "$LOGD/tracefile.log" | sed 's/;/; /g')"
	[ -f "$LOGD/watcher.log" ] && echo "- watcher: $(grep -c 'dropped' "$LOGD/watcher.log") of its runs reported dropped records$(grep -h 'dropped' "$LOGD/watcher.log" | head -3 | sed 's/^/; /' | tr -d '\n')"
	echo
	echo "## Medians of $REPS rounds (speed relative to native; higher is better)"
	echo
	medians
	echo
	echo "## Cost against veneer --no-trace: median of the per-round ratios (min-max over the rounds)"
	echo
	echo "time with / time without (IOPS without / IOPS with): 1.05 = 5% slower than --no-trace. \`*\` = every round on the same side of 1.00. The noise column is the spread of veneer-notrace itself, ±(max-min)/2 of its median."
	echo
	ratios
	echo
	echo "Raw values: $(basename "$CSV"); file and byte counts: $(basename "$CHK"); daemon logs in log/."
} >"$MD"
cat "$MD"
say "report: $MD"
