#!/usr/bin/env bash
# bench/run-image.sh - squashfs images: veneer --layer against native, kernel
# squashfs, squashfuse and squashfuse_ll, side by side in one run.
#
# Normally started by bench/run.sh (SUITE=image), which installs packages,
# builds veneer and snapshots the binary; it can also be run directly with
# VENEER set. Three passes, all on the same corpus and image:
#
#   1. the shared harness (../shared/bench/run.sh) with the image targets
#      (native squashfs squashfuse squashfuse_ll veneer-image): stat of the
#      tree, readdir, read of every small file, grep, 1 GiB sequential read
#      (cold and warm), fio 4 KiB random reads with 2 jobs (warm). Its
#      veneer-image target is started through bench/veneer-image, which adds
#      --cache=always (the peers' configuration) or mounts in place;
#   2. what the harness does not measure (it is read-only and cannot be
#      edited): fio 4 KiB random reads with 2 jobs on a COLD mount (fresh
#      mount, dropped caches), and the read of every small file cold then
#      warm, on the same targets plus veneer mounted in place
#      (veneer-image-inplace), REPS interleaved rounds; before that, a check
#      that veneer serves the same bytes as the unpacked tree;
#   3. (PERF=1) perf record -g of the veneer daemon during a warm read of
#      every small file and during cold random reads; reports in the output dir.
#
# Usage:  sudo VENEER=path/to/veneer bench/run-image.sh [SCRATCH_DIR]
#         (default SCRATCH_DIR: /tmp/veneer-bench-image)
# Knobs (environment; defaults in brackets):
#   VENEER             the veneer binary to measure (required)
#   TARGETS ["native squashfs squashfuse squashfuse_ll veneer-image"]  pass 1
#   EXTRA_TARGETS [$TARGETS veneer-image-inplace]                      pass 2
#   REPS [3]           rounds of pass 1 and of pass 2 (median reported)
#   VENEER_IMAGE_MODE [separate]  how the harness's veneer-image is mounted
#                      (separate: EMPTY LOWER + MNT; inplace: see bench/veneer-image)
#   VENEER_IMAGE_CACHE [always]   --cache= for the separate veneer-image mounts
#   COLD_RT [5]        seconds of each cold random-read fio run
#   EXTRA_WL ["rand4k read_small"]  the workloads of pass 2, in this order, each on a
#                      fresh mount with dropped caches: rand4k (fio, cold only),
#                      read_small, stat_tree, readdir_10k, lsl_10k (the harness's
#                      fsb workloads: cold, then warm right after)
#   PERF [1]           1 = pass 3
#   CHECK [1]          1 = compare veneer's view with the unpacked tree first
#   SKIP_HARNESS [0]   1 = only passes 2 and 3 (the corpus must exist)
#   REPORT_ONLY [0]    1 = no measurement: rebuild image-DATE.md from the CSVs in OUT
#   OUT [SCRATCH/image-YYYYMMDD-HHMMSS]
# Everything the harness reads (FIO_RT, BIG_MIB, SQFS_COMP, SQFS_LEVEL, ...)
# is passed through.
set -uo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/bench
SHARED_BENCH=${SHARED_BENCH:-$(dirname "$REPO")/shared/bench/run.sh}
SCRATCH=${1:-${SCRATCH:-/tmp/veneer-bench-image}}
export TARGETS=${TARGETS:-"native squashfs squashfuse squashfuse_ll veneer-image"}
EXTRA_TARGETS=${EXTRA_TARGETS:-"$TARGETS veneer-image-inplace"}
export REPS=${REPS:-3}
export VENEER_IMAGE_MODE=${VENEER_IMAGE_MODE:-separate}
export VENEER_IMAGE_CACHE=${VENEER_IMAGE_CACHE-always}
COLD_RT=${COLD_RT:-5}
EXTRA_WL=${EXTRA_WL:-"rand4k read_small"}
for w in $EXTRA_WL; do
	case $w in rand4k | read_small | stat_tree | readdir_10k | lsl_10k) ;; *) echo "bench-image: error: EXTRA_WL: unknown workload '$w'" >&2; exit 1 ;; esac
done
PERF=${PERF:-1}
CHECK=${CHECK:-1}
SKIP_HARNESS=${SKIP_HARNESS:-0}
TMO=${TMO:-600}
DAY=$(date +%Y%m%d)
OUTD=${OUT:-$SCRATCH/image-$(date +%Y%m%d-%H%M%S)}

say() { printf 'bench-image: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
[ -n "${VENEER:-}" ] && [ -x "$VENEER" ] || die "VENEER must name the veneer binary to measure"
[ -f "$SHARED_BENCH" ] || die "shared harness not found at $SHARED_BENCH"
case $SCRATCH in /*) ;; *) die "SCRATCH_DIR must be an absolute path: $SCRATCH" ;; esac
case $VENEER_IMAGE_MODE in separate | inplace) ;; *) die "VENEER_IMAGE_MODE: separate or inplace" ;; esac
mkdir -p "$OUTD" || die "cannot create $OUTD"
export VENEER_REAL=$VENEER
T0=$EPOCHREALTIME

# ------------------------------------------------------------------ pass 1
if [ "${REPORT_ONLY:-0}" = 1 ]; then
	[ -n "${OUT:-}" ] || die "REPORT_ONLY=1 needs OUT=the directory of an earlier run"
	SKIP_HARNESS=1
fi
if [ "$SKIP_HARNESS" != 1 ]; then
	say "pass 1: shared harness, targets: $TARGETS, reps: $REPS, veneer-image: $VENEER_IMAGE_MODE${VENEER_IMAGE_CACHE:+, --cache=$VENEER_IMAGE_CACHE}"
	VENEER=$BENCH/veneer-image OUT=$OUTD bash "$SHARED_BENCH" "$SCRATCH" || say "harness exited with status $?"
fi
T1=$EPOCHREALTIME

# ------------------------------------------------------------------ pass 2 setup
# (passes 2 and 3 are skipped as a whole with REPORT_ONLY=1)
if [ "${REPORT_ONLY:-0}" != 1 ]; then
# The harness unmounted its ext4 image at exit: attach it again the same way.
FSIMG=$SCRATCH/ext4.img
FSMNT=$SCRATCH/fs
CORPUS=$FSMNT/corpus
IMG=$FSMNT/img/corpus.sqfs
MNT=$SCRATCH/mnt-image
EMPTY=$SCRATCH/veneer-empty
LOGD=$OUTD/log
FSB=$SCRATCH/bin/fsb
mkdir -p "$MNT" "$EMPTY" "$LOGD" "$FSMNT"
[ -f "$FSIMG" ] && [ -x "$FSB" ] || die "no corpus in $SCRATCH (run without SKIP_HARNESS=1 first)"
FSLOOP=
declare -A DPID=() MOUNTED=()
is_mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }
stop_pid() {
	local pid=$1 i
	for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }; sleep 0.1; done
	kill "$pid" 2>/dev/null
	for i in $(seq 30); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}
umount_t() {
	local t=$1 m=${MOUNTED[$1]:-}
	[ -n "$m" ] || return 0
	if is_mounted "$m"; then
		if [ "$t" = squashfs ]; then umount -d "$m" || umount -l "$m"; else fusermount3 -u "$m" || umount -l "$m"; fi
	fi 2>>"$LOGD/run.log"
	if [ -n "${DPID[$t]:-}" ]; then
		stop_pid "${DPID[$t]}"
		unset "DPID[$t]"
	fi
	unset "MOUNTED[$t]"
}
cleanup() {
	trap - EXIT INT TERM
	local t
	for t in "${!MOUNTED[@]}"; do umount_t "$t"; done
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
[ -f "$IMG" ] && [ -f "$CORPUS/big.bin" ] || die "corpus or image missing under $FSMNT"
BIG_MIB=$(($(stat -c %s "$CORPUS/big.bin") >> 20))

start_daemon() { # target cmd...
	local t=$1 m=$MNT/$1 i
	shift
	"$@" >>"$LOGD/$t.log" 2>&1 &
	DPID[$t]=$!
	MOUNTED[$t]=$m
	for i in $(seq 200); do
		if is_mounted "$m" && stat "$m/." >/dev/null 2>&1; then return 0; fi
		kill -0 "${DPID[$t]}" 2>/dev/null || break
		sleep 0.05
	done
	say "mount of $t failed (see $LOGD/$t.log)"
	return 1
}
mount_t() {
	local t=$1 m=$MNT/$1
	[ "$t" = native ] && return 0
	mkdir -p "$m"
	case $t in
	squashfs)
		mount -t squashfs -o loop,ro "$IMG" "$m" || return 1
		MOUNTED[$t]=$m
		;;
	squashfuse)
		start_daemon "$t" squashfuse -f -o kernel_cache,entry_timeout=86400,attr_timeout=86400,negative_timeout=86400 "$IMG" "$m" ;;
	squashfuse_ll) start_daemon "$t" squashfuse_ll -f "$IMG" "$m" ;;
	veneer-image)
		start_daemon "$t" "$VENEER_REAL" mount -f ${VENEER_IMAGE_CACHE:+--cache=$VENEER_IMAGE_CACHE} --layer "$IMG" "$EMPTY" "$m" ;;
	veneer-image-inplace)
		VENEER_IMAGE_MODE=inplace VENEER_IMAGE_CACHE= start_daemon "$t" "$BENCH/veneer-image" mount -f --layer "$IMG" "$EMPTY" "$m" ;;
	*) return 1 ;;
	esac
}
root_of() { if [ "$1" = native ]; then echo "$CORPUS"; else echo "$MNT/$1"; fi; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; sleep 0.2; echo 3 >/proc/sys/vm/drop_caches; }
cold() { umount_t "$1"; mount_t "$1" || return 1; drop_caches; }
fio_rand() { # root runtime -> IOPS
	local out
	out=$(timeout -k 5 "$TMO" fio --name=rand4k --filename="$1/big.bin" --readonly --rw=randread --bs=4k \
		--ioengine=psync --numjobs=2 --size="${BIG_MIB}M" --time_based --runtime="$2" --invalidate=0 \
		--group_reporting --output-format=terse --terse-version=3 2>>"$LOGD/run.log") || return 1
	out=$(awk -F';' 'NF > 8 { print $8; exit }' <<<"$out")
	[ -n "$out" ] && [ "$out" != 0 ] || return 1
	echo "$out"
}
fsbt() { local o; o=$(timeout -k 5 "$TMO" "$FSB" "$@" 2>>"$LOGD/run.log") || return 1; echo "${o%% *}"; }
readall() { fsbt readall "$1/tree"; }
declare -A WL_ARGS=([read_small]="readall tree" [stat_tree]="walkstat tree" [readdir_10k]="readdir flat" [lsl_10k]="lsl flat")
CSV2=$OUTD/extra-$DAY.csv
echo "date,target,workload,mode,rep,value,unit" >"$CSV2"
rec() { echo "$DAY,$1,$2,$3,$4,${5:-NA},$6" >>"$CSV2"; [ -n "${5:-}" ] || say "   $1 $2 $3 round $4 failed"; }

# ------------------------------------------------------------------ check
if [ "$CHECK" = 1 ]; then
	for t in veneer-image veneer-image-inplace; do
		case " $EXTRA_TARGETS " in *" $t "*) ;; *) continue ;; esac
		cold "$t" || die "cannot mount $t for the data check (log: $LOGD/$t.log)"
		R=$(root_of "$t")
		say "check: $t serves the same tree and big.bin as the unpacked corpus"
		diff -r -q "$CORPUS/tree" "$R/tree" >"$LOGD/check-$t.txt" 2>&1 || die "$t: tree differs from the corpus (see $LOGD/check-$t.txt)"
		cmp "$CORPUS/big.bin" "$R/big.bin" >>"$LOGD/check-$t.txt" 2>&1 || die "$t: big.bin differs (see $LOGD/check-$t.txt)"
		# names, sizes, modes and types of the 10,000-entry directory: a lookup of every name
		diff <(find "$CORPUS/flat" -mindepth 1 -printf '%P %s %m %y\n' | sort) \
			<(find "$R/flat" -mindepth 1 -printf '%P %s %m %y\n' | sort) >>"$LOGD/check-$t.txt" 2>&1 ||
			die "$t: flat directory differs (see $LOGD/check-$t.txt)"
		umount_t "$t"
	done
fi

# ------------------------------------------------------------------ pass 2
RAN2=()
for t in $EXTRA_TARGETS; do
	if mount_t "$t"; then RAN2+=("$t"); else say "== $t: cannot mount, skipped (log: $LOGD/$t.log)"; fi
	umount_t "$t"
done
say "pass 2: workloads: $EXTRA_WL (rand4k: cold 4 KiB random reads, 2 jobs, ${COLD_RT} s), targets: ${RAN2[*]}"
declare -A LOAD2=()
for r in $(seq "$REPS"); do
	for t in "${RAN2[@]}"; do
		l=$(cut -d' ' -f1 /proc/loadavg)
		LOAD2[$t]="${LOAD2[$t]:+${LOAD2[$t]} }$l"
		say "== pass 2 round $r/$REPS: $t (loadavg $l)"
		R=$(root_of "$t")
		for w in $EXTRA_WL; do
			if [ "$w" = rand4k ]; then
				if cold "$t"; then rec "$t" rand4k_psync cold "$r" "$(fio_rand "$R" "$COLD_RT")" IOPS; else rec "$t" rand4k_psync cold "$r" "" IOPS; fi
				continue
			fi
			read -r fc sub <<<"${WL_ARGS[$w]}"
			if cold "$t"; then
				rec "$t" "$w" cold "$r" "$(fsbt "$fc" "$R/$sub")" s
				rec "$t" "$w" warm "$r" "$(fsbt "$fc" "$R/$sub")" s
			else
				rec "$t" "$w" cold "$r" "" s
				rec "$t" "$w" warm "$r" "" s
			fi
		done
		umount_t "$t"
	done
done
T2=$EPOCHREALTIME

# ------------------------------------------------------------------ pass 3
if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
	t=veneer-image
	say "pass 3: perf record -g of the $t daemon"
	if cold "$t"; then
		R=$(root_of "$t")
		pid=${DPID[$t]}
		readall "$R" >/dev/null # cold, not recorded
		perf record -q -g -F 999 -p "$pid" -o "$OUTD/perf-warm-readall.data" -- "$FSB" readall "$R/tree" \
			>"$LOGD/perf-warm.txt" 2>&1
		umount_t "$t"
	fi
	if cold "$t"; then
		R=$(root_of "$t")
		pid=${DPID[$t]}
		perf record -q -g -F 999 -p "$pid" -o "$OUTD/perf-cold-rand4k.data" -- fio --name=rand4k \
			--filename="$R/big.bin" --readonly --rw=randread --bs=4k --ioengine=psync --numjobs=2 \
			--size="${BIG_MIB}M" --time_based --runtime="$COLD_RT" --invalidate=0 --group_reporting \
			>"$LOGD/perf-cold-fio.txt" 2>&1
		umount_t "$t"
	fi
	for p in warm-readall cold-rand4k; do
		[ -f "$OUTD/perf-$p.data" ] || continue
		{
			perf report -i "$OUTD/perf-$p.data" --no-children --sort dso --stdio -g none 2>/dev/null
			perf report -i "$OUTD/perf-$p.data" --no-children --sort dso,symbol --stdio -g none --percent-limit 0.5 2>/dev/null
		} | grep -v '^$' >"$OUTD/perf-$p.txt"
		perf report -i "$OUTD/perf-$p.data" --children --sort symbol --stdio -g none --percent-limit 3 \
			2>/dev/null | grep -v '^$' >"$OUTD/perf-$p-children.txt"
	done
fi
T3=$EPOCHREALTIME
else # REPORT_ONLY=1
	CSV2=$(ls -t "$OUTD"/extra-*.csv 2>/dev/null | head -1)
	[ -n "$CSV2" ] || die "no extra-*.csv in $OUTD"
	DAY=$(basename "$CSV2" .csv)
	DAY=${DAY#extra-}
fi # REPORT_ONLY

# ------------------------------------------------------------------ report
# medians over both CSVs; ratios = speed relative to native and to squashfs
# (time_ref / time, or value / value_ref), higher is better
CSV1=$(ls -t "$OUTD"/results-*.csv 2>/dev/null | head -1)
SUM=$OUTD/summary.txt
{ [ -n "$CSV1" ] && tail -n +2 "$CSV1" | sed 's/^/H,/'; tail -n +2 "$CSV2" | sed 's/^/X,/'; } |
	awk -F, '$7 != "NA" && $7 != "" { print $1 "," $3 "," $4 "," $5 "," $7 "," $8 }' | sort -t, -k1,1 -k2,2 -k3,3 -k4,4 -k5,5g |
	awk -F, 'function flush() { if (n) { m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2; print key, m, v[1], v[n], n, u } }
	{ k = $1 " " $2 " " $3 " " $4; if (k != key) { flush(); key = k; n = 0 } v[++n] = $5; u = $6 } END { flush() }' >"$SUM"
get() { # src target workload mode field (5 median, 6 min, 7 max, 8 n, 9 unit)
	awk -v k="$1 $2 $3 $4" -v f="$5" '$1 " " $2 " " $3 " " $4 == k { print $f; exit }' "$SUM"
}
fmt() {
	awk -v v="$1" -v u="$2" 'BEGIN { if (u == "s") { if (v < 1) printf "%.3g ms", v * 1000; else printf "%.3g s", v }
		else if (u == "MB/s") printf "%.0f MB/s", v; else if (u == "IOPS") { if (v >= 1e6) printf "%.2fM IOPS", v / 1e6; else printf "%.1fk IOPS", v / 1e3 } }'
}
ratio() { awk -v v="$1" -v r="$2" -v u="$3" 'BEGIN { if (r == "" || v == "") { printf "-"; exit } x = (u == "s") ? r / v : v / r; printf "%.2f×", x }'; }
ROWS="H:stat_tree:cold:(a) stat every entry of the tree
H:stat_tree:warm:(a) stat every entry of the tree
H:readdir_10k:cold:(b) readdir, 10000-entry dir (names only)
H:readdir_10k:warm:(b) readdir, 10000-entry dir (names only)
H:lsl_10k:cold:(b') readdir + lstat each, 10000-entry dir (ls -l)
H:lsl_10k:warm:(b') readdir + lstat each, 10000-entry dir (ls -l)
H:read_small:cold:(c) read every small file
H:read_small:warm:(c) read every small file
H:grep_r:cold:(h) grep -r over the tree
H:grep_r:warm:(h) grep -r over the tree
H:seq_1g:cold:(d) sequential read of the 1 GiB file, 1 MiB reads
H:seq_1g:warm:(d) sequential read of the 1 GiB file, 1 MiB reads
H:fio_psync:warm:(e) fio randread 4 KiB psync, 2 jobs
H:fio_mmap:warm:(f) fio randread 4 KiB mmap, 2 jobs
X:rand4k_psync:cold:(r) fio randread 4 KiB psync, 2 jobs, ${COLD_RT} s (pass 2)
X:read_small:cold:(c2) read every small file (pass 2)
X:read_small:warm:(c2) read every small file (pass 2)
X:stat_tree:cold:(a2) stat every entry of the tree (pass 2)
X:stat_tree:warm:(a2) stat every entry of the tree (pass 2)
X:readdir_10k:cold:(b2) readdir, 10000-entry dir (pass 2)
X:readdir_10k:warm:(b2) readdir, 10000-entry dir (pass 2)
X:lsl_10k:cold:(b'2) readdir + lstat each, 10000-entry dir (ls -l) (pass 2)
X:lsl_10k:warm:(b'2) readdir + lstat each, 10000-entry dir (ls -l) (pass 2)"
table() {
	local row src w m label t hdr="| workload | mode |" sep="|---|---|" line v u nat sq
	local cols=("$@")
	for t in "${cols[@]}"; do hdr+=" $t |"; sep+="---|"; done
	echo "$hdr"
	echo "$sep"
	while IFS=: read -r src w m label; do
		[ -n "$(get "$src" native "$w" "$m" 5)$(get "$src" veneer-image "$w" "$m" 5)" ] || continue
		line="| $(eval echo "\"$label\"") | $m |"
		nat=$(get "$src" native "$w" "$m" 5)
		sq=$(get "$src" squashfs "$w" "$m" 5)
		for t in "${cols[@]}"; do
			v=$(get "$src" "$t" "$w" "$m" 5)
			u=$(get "$src" "$t" "$w" "$m" 9)
			if [ -z "$v" ]; then line+=" - |"; continue; fi
			line+=" $(fmt "$v" "$u") ($(ratio "$v" "$nat" "$u") / $(ratio "$v" "$sq" "$u")) |"
		done
		echo "$line"
	done <<<"$ROWS"
}
COLS=()
for t in native squashfs squashfuse squashfuse_ll veneer-image veneer-image-inplace; do
	grep -q "^[HX] $t " "$SUM" && COLS+=("$t")
done
MD=$OUTD/image-$DAY.md
if [ "${REPORT_ONLY:-0}" = 1 ] && [ -f "$MD" ]; then
	# keep the header written by the measuring run, redo the table
	HEAD=$(sed -n '1,/^## Medians/p' "$MD" | sed '$d')
	{
		echo "$HEAD"
		echo "## Medians of $(awk -F, 'NR > 1 { print $5 }' "$CSV2" | sort -n | tail -1) rounds (speed relative to native / to kernel squashfs; higher is better)"
		echo
		table "${COLS[@]}"
		echo
		echo "Raw values: $(basename "${CSV1:-none}") (pass 1; the harness's own report is beside it) and $(basename "$CSV2") (pass 2)."
	} >"$MD"
	cat "$MD"
	exit 0
fi
{
	echo "# veneer image benchmark $DAY"
	echo
	echo "- $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
	echo "- veneer: $VENEER ($("$VENEER" --version 2>&1 | head -1)); squashfuse $(dpkg-query -W -f='${Version}' squashfuse 2>/dev/null); fio $(fio --version)"
	echo "- image: $(stat -c %s "$IMG") bytes, from the harness (corpus.sqfs: ${SQFS_COMP:-zstd} level ${SQFS_LEVEL-3}, 128 KiB blocks); big.bin $BIG_MIB MiB (48 KiB text + 16 KiB random per 64 KiB)"
	[ "$SKIP_HARNESS" = 1 ] && echo "- pass 1 (shared harness): skipped (SKIP_HARNESS=1)" ||
	echo "- pass 1 (shared harness, rows a-h): veneer-image = \`veneer mount -f${VENEER_IMAGE_CACHE:+ --cache=$VENEER_IMAGE_CACHE} --layer corpus.sqfs EMPTY MNT\` ($VENEER_IMAGE_MODE)"
	echo "- pass 2 (workloads: $EXTRA_WL; rows r, c2, a2, b2, b'2): fresh mount + drop_caches before each cold run; squashfs = \`mount -t squashfs -o loop,ro\`; squashfuse = \`-f -o kernel_cache,entry_timeout=86400,attr_timeout=86400,negative_timeout=86400\`; squashfuse_ll = \`-f\`; veneer-image as in pass 1; veneer-image-inplace = the image projected in place over the empty LOWER (bench/veneer-image, VENEER_IMAGE_MODE=inplace: as root allow_other, default_permissions, --cache=always, --opens=skip)"
	echo "- load average at the start of each pass-2 round:"
	for t in "${RAN2[@]}"; do echo "  - $t: ${LOAD2[$t]:-}"; done
	echo "- wall time: pass 1 $(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.0f", b - a }') s, pass 2 $(awk -v a="$T1" -v b="$T2" 'BEGIN { printf "%.0f", b - a }') s, pass 3 $(awk -v a="$T2" -v b="$T3" 'BEGIN { printf "%.0f", b - a }') s"
	echo
	echo "## Medians of $REPS rounds (speed relative to native / to kernel squashfs; higher is better)"
	echo
	table "${COLS[@]}"
	echo
	echo "Raw values: $(basename "${CSV1:-none}") (pass 1; the harness's own report is beside it) and $(basename "$CSV2") (pass 2)."
} >"$MD"
cat "$MD"
say "report: $MD"
