#!/usr/bin/env bash
# bench/run-config.sh - veneer and passthrough_ll in matching configurations.
#
# The harness runs passthrough_ll as libfuse ships it: no allow_other (only
# its owner can use the mount, so the kernel checks no permissions) and no
# xattr support (the kernel, told ENOSYS once, never asks again). veneer
# supports xattrs always, and in place as root it adds allow_other and with
# it default_permissions (every user keeps the directory's permission
# checks). Both cost round trips the harness's passthrough_ll never pays:
#   - with default_permissions the kernel refreshes a directory's attributes
#     (a GETATTR) before the permission check of each create and unlink once
#     the directory changed;
#   - with xattrs the kernel asks for security.capability (a GETXATTR) before
#     a write whenever it cannot tell there is none: FUSE never marks inodes
#     S_NOSEC, so for the first write after a file's attributes were (re)read,
#     and with libfuse 3.14 no FUSE_HANDLE_KILLPRIV_V2 to change that
#     (veneer asks for it through its own I/O hook: --killpriv).
# This runs both daemons in each configuration, side by side:
#
#   native                a directory on the tmpfs
#   passthrough_ll        -o source=LOWER,cache=always (as the harness runs it)
#   passthrough_ll-xattr  ... plus xattr
#   passthrough_ll-multi  ... plus xattr,allow_other,default_permissions
#   veneer                veneer mount --cache=always LOWER MNT (as the harness runs it)
#   veneer-multi          ... plus -o allow_other (so default_permissions)
#   veneer-inplace        veneer mount LOWER, as root (allow_other, default_permissions)
#   veneer-inplace-V[-V]  ... with the levers V: kpoff (--killpriv=off), skip,
#                         send, pt (--opens=skip|send|passthrough), uring
#                         (--uring: enable_uring is switched on for the run
#                         and put back after); only when named in CONFIG_TARGETS
#
# Workloads per target and round (targets visited in a rotating order), each
# on a fresh mount over a tmpfs lower (per-request cost, not disk time):
#   create  fsb create: N x (open O_CREAT|O_EXCL, write SIZE bytes, close)
#   unlink  fsb unlink of those N files
#   tar_x   tar -x of a generated tree (TREE_L1 x TREE_L2 x TREE_L3 directories
#           of TREE_FILES files of 1-16 KiB, fsb gen-tree: the harness's row (h))
#   grep_cold  grep -r over that tree right after a fresh mount and drop_caches
#              (every file looked up and read through the mount)
#   grep_warm  grep -r again: the first stat of every file after its data was
#              read cold (the kernel dropped its atime after the read, so one
#              GETATTR per file)
#   rm_rf   rm -rf of the tree, through the mount
#   git_clone  git clone --no-hardlinks of a local repository of GIT_FILES
#              files (GIT_L1 x GIT_L2 x GIT_L3 x GIT_LEAF of the same kind,
#              committed once per run outside the mounts, repacked to one pack)
#   git_rm  rm -rf of that clone
#
# Usage: sudo bench/run-config.sh [SCRATCH_DIR]   (default /tmp/veneer-bench;
#        normally through `bench/run.sh` with SUITE=config)
# Knobs: VENEER (binary, required), REPS [5], N [5000], SIZE [4096],
#        TREE_L1/L2/L3 [10/10/8], TREE_FILES [20], GIT_L1/L2/L3 [5/5/10],
#        GIT_LEAF [20] (5,000 files), OUT, CONFIG_TARGETS (the targets,
#        default all but the veneer-inplace-V variants).
set -uo pipefail
export LC_ALL=C

SCRATCH=${1:-/tmp/veneer-bench}
REPS=${REPS:-5}
N=${N:-5000}
SIZE=${SIZE:-4096}
TARGETS=${CONFIG_TARGETS:-"native passthrough_ll passthrough_ll-xattr passthrough_ll-multi veneer veneer-multi veneer-inplace"}
TREE=(${TREE_L1:-10} ${TREE_L2:-10} ${TREE_L3:-8} ${TREE_FILES:-20})
read -r -a GITTREE <<<"${GIT_L1:-5} ${GIT_L2:-5} ${GIT_L3:-10} ${GIT_LEAF:-20}"
OUTD=${OUT:-$SCRATCH/config-$(date +%Y%m%d-%H%M%S)}
FSB=$SCRATCH/bin/fsb
PT=$SCRATCH/bin/passthrough_ll
SHARED_BENCH=${SHARED_BENCH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/shared/bench/run.sh}

say() { printf 'bench-config: [%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
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

TMP=$SCRATCH/config-tmpfs
mkdir -p "$TMP"
mountpoint -q "$TMP" || mount -t tmpfs -o size=2g tmpfs "$TMP" || die "cannot mount a tmpfs on $TMP"
URING_PARAM=/sys/module/fuse/parameters/enable_uring
URING_OLD=
if [[ " $TARGETS " == *-uring* ]]; then
	URING_OLD=$(cat "$URING_PARAM" 2>/dev/null) || die "no FUSE over io_uring in this kernel ($URING_PARAM)"
	echo 1 >"$URING_PARAM" || die "cannot switch $URING_PARAM on"
	say "switched $URING_PARAM on for the run (it was $URING_OLD; put back at the end)"
fi
cleanup() {
	local t
	for t in $TARGETS; do umount_t "$t"; done
	umount "$TMP" 2>/dev/null || umount -l "$TMP"
	[ -z "$URING_OLD" ] || echo "$URING_OLD" >"$URING_PARAM"
}
trap cleanup EXIT

lower_of() { echo "$TMP/lower-$1"; }
mnt_of() { case $1 in native | veneer-inplace*) lower_of "$1" ;; *) echo "$TMP/mnt-$1" ;; esac; }
# The options of a veneer-inplace-V[-V...] target.
variant_args() {
	local v
	for v in $(tr - ' ' <<<"${1#veneer-inplace-}"); do
		case $v in
		kpoff) echo --killpriv=off ;;
		skip | send) echo "--opens=$v" ;;
		pt) echo --opens=passthrough ;;
		uring) echo --uring ;;
		*) die "unknown lever '$v' in target $1" ;;
		esac
	done
}
# veneer without -f and passthrough_ll both return once the mount is ready
mount_t() {
	local t=$1 l m
	l=$(lower_of "$t") m=$(mnt_of "$t")
	mkdir -p "$l" "$m"
	case $t in
	native) ;;
	passthrough_ll) "$PT" -o "source=$l,cache=always" "$m" ;;
	passthrough_ll-xattr) "$PT" -o "source=$l,cache=always,xattr" "$m" ;;
	passthrough_ll-multi) "$PT" -o "source=$l,cache=always,xattr,allow_other,default_permissions" "$m" ;;
	veneer) "$VENEER" mount --cache=always "$l" "$m" ;;
	veneer-multi) "$VENEER" mount --cache=always -o allow_other "$l" "$m" ;;
	veneer-inplace) "$VENEER" mount "$l" ;;
	veneer-inplace-*) "$VENEER" mount $(variant_args "$t") "$l" ;;
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

TARBALL=$TMP/tree.tar
if ! [ -f "$TARBALL" ]; then
	mkdir -p "$TMP/gen" && "$FSB" gen-tree "$TMP/gen/tree" "${TREE[@]}" >/dev/null || die "fsb gen-tree failed"
	tar -C "$TMP/gen" -cf "$TARBALL" tree || die "tar -c failed"
	rm -rf "$TMP/gen"
fi
# The repository git_clone clones: committed once, outside every mount.
GITREPO=$TMP/gitrepo
if ! [ -d "$GITREPO/.git" ]; then
	rm -rf "$GITREPO" && mkdir -p "$GITREPO" || die "cannot create $GITREPO"
	"$FSB" gen-tree "$GITREPO/src" "${GITTREE[@]}" >/dev/null || die "fsb gen-tree (git) failed"
	git -C "$GITREPO" init -q && git -C "$GITREPO" add -A &&
		git -C "$GITREPO" -c user.name=bench -c user.email=bench@localhost commit -q -m corpus &&
		git -C "$GITREPO" repack -adq && git -C "$GITREPO" prune ||
		die "cannot build the git repository in $GITREPO"
fi
GIT_FILES=$(git -C "$GITREPO" ls-files | wc -l)

# Seconds taken by a command (its output dropped); fails when it fails.
timed() {
	local s=$EPOCHREALTIME
	"$@" >/dev/null 2>>"$OUTD/commands.log" || return 1
	awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.6f\n", b - a }'
}
# The harness's row (h): the files that hold its needle (status 1: none).
grep_tree() { grep -r -l -F XYZZY_NEEDLE "$1"; [ $? -le 1 ]; }
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	sleep 0.2	# FUSE forgets, deferred evictions; then once more
	echo 3 >/proc/sys/vm/drop_caches
}

echo "# loadavg before: $(cat /proc/loadavg)" >>"$OUTD/loadavg.txt"
say "targets: $TARGETS; $REPS rounds: $N files of $SIZE bytes, tar -x of $(tar -tf "$TARBALL" | wc -l) entries, git clone of $GIT_FILES files; results in $OUTD"
targets=($TARGETS)
for r in $(seq "$REPS"); do
	k=$(((r - 1) % ${#targets[@]}))
	order=("${targets[@]:k}" "${targets[@]:0:k}")
	for t in "${order[@]}"; do
		mount_t "$t" || die "mount of $t failed (see $OUTD/$t.log)"
		m=$(mnt_of "$t")
		c=$("$FSB" create "$m/w" "$N" "$SIZE") || die "$t: fsb create failed"
		u=$("$FSB" unlink "$m/w" "$N") || die "$t: fsb unlink failed"
		x=$(timed tar -xf "$TARBALL" -C "$m") || die "$t: tar -x failed"
		# cold: a fresh mount (fresh daemon and kernel inodes) and empty caches
		umount_t "$t"
		mount_t "$t" || die "mount of $t failed (see $OUTD/$t.log)"
		drop_caches
		gc=$(timed grep_tree "$m/tree") || die "$t: grep -r (cold) failed"
		gw=$(timed grep_tree "$m/tree") || die "$t: grep -r (warm) failed"
		rr=$(timed rm -rf "$m/tree") || die "$t: rm -rf failed"
		gcl=$(timed git clone -q --no-hardlinks "$GITREPO" "$m/clone") || die "$t: git clone failed"
		grm=$(timed rm -rf "$m/clone") || die "$t: rm -rf of the clone failed"
		echo "$t $r ${c%% *} ${u%% *} $x $gc $gw $rr $gcl $grm" >>"$OUTD/raw.txt"
		umount_t "$t"
	done
	echo "# loadavg after round $r: $(cat /proc/loadavg)" >>"$OUTD/loadavg.txt"
	say "round $r done (loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v t="$1" -v c="$2" '$1 == t && NF >= c { print $c }' "$OUTD/raw.txt" | median; }
range() { awk -v t="$1" -v c="$2" '$1 == t && NF >= c { print $c }' "$OUTD/raw.txt" | sort -g | sed -n '1p;$p' | paste -sd' '; }
# rows: raw column, title, scale (per file in µs, or seconds)
ROWS=(3:"create µs/file":file 4:"unlink µs/file":file 5:"tar -x s":s 6:"grep -r cold s":s
      7:"grep -r warm s (first stat after cold reads)":s 8:"rm -rf tree s":s 9:"git clone s":s 10:"rm -rf clone s":s)
report() {
	echo "# veneer and passthrough_ll in matching configurations (tmpfs lower, medians of $REPS rounds)"
	echo
	echo "veneer: \`$("$VENEER" --version)\`, kernel $(uname -r), $(nproc) CPUs, $(date -u +%Y-%m-%d). create/unlink: $N files of $SIZE B; tar -x, grep -r, rm -rf: the $(tar -tf "$TARBALL" | wc -l)-entry tree ($(($(stat -c %s "$TARBALL") >> 20)) MiB); git clone: $GIT_FILES files. Load average: $(sed -n '1p;$p' "$OUTD/loadavg.txt" | sed 's/^# //' | paste -sd';' | sed 's/;/; /')."
	echo
	echo "Medians, with the rounds' min-max:"
	echo
	local row t h="| target |" sep="|---|"
	for row in "${ROWS[@]}"; do IFS=: read -r _ title _ <<<"$row"; h+=" $title |"; sep+="---|"; done
	echo "$h"; echo "$sep"
	for t in $TARGETS; do
		local line="| $t |"
		for row in "${ROWS[@]}"; do
			IFS=: read -r c _ unit <<<"$row"
			line+=$(awk -v m="$(col "$t" "$c")" -v r="$(range "$t" "$c")" -v u="$unit" -v n="$N" 'BEGIN {
				split(r, a, " "); k = (u == "file") ? 1e6 / n : 1; f = (u == "file") ? "%.1f" : "%.2f"
				if (m == "") { printf " - |"; exit }
				printf " " f " (" f "-" f ") |", m * k, a[1] * k, a[2] * k }')
		done
		echo "$line"
	done
	echo
	echo "Ratios to native (native time / target time; 1.00x = as fast as native):"
	echo
	echo "$h"; echo "$sep"
	for t in $TARGETS; do
		local line="| $t |"
		for row in "${ROWS[@]}"; do
			IFS=: read -r c _ _ <<<"$row"
			line+=$(awk -v m="$(col "$t" "$c")" -v nm="$(col native "$c")" 'BEGIN {
				if (m == "" || nm == "" || m == 0) printf " - |"; else printf " %.2fx |", nm / m }')
		done
		echo "$line"
	done
}
report >"$OUTD/config.md"
cat "$OUTD/config.md"
