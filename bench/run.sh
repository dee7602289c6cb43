#!/usr/bin/env bash
# bench/run.sh - veneer's performance benchmark.
#
# A thin wrapper over the shared peer harness (../shared/bench/run.sh beside
# this repository): builds veneer if needed, installs the Debian packages the
# chosen targets need, then runs the harness with VENEER=build/veneer so that
# native, the FUSE peers and veneer are measured side by side in one run.
#
# Usage:  sudo bench/run.sh [SCRATCH_DIR]      (default: /tmp/veneer-bench)
#
# Knobs (environment; defaults in brackets). Everything else the harness reads
# (FIO_RT, BIG_MIB, TREE_L1/L2/L3, TREE_FILES, FLAT_N, WRITE_N, WRITE_SIZE,
# FSIMG_GB, REGEN, TMO, NICE, OUT, ...) is passed through untouched; see the
# top of ../shared/bench/run.sh.
#   SUITE [peers]      peers: the harness as below; image: bench/run-image.sh (squashfs
#                      images: native, kernel squashfs, squashfuse, squashfuse_ll and
#                      veneer --layer, plus cold random reads and a perf profile; its
#                      own knobs are documented at its top); trace: bench/run-trace.sh
#                      (the trace filter's cost: veneer in place with and without
#                      --no-trace, with a live watcher, with --trace FILE, and native);
#                      config: bench/run-config.sh (create, unlink and tar -x, veneer and
#                      passthrough_ll each with and without xattrs and multi-user checks)
#   TARGETS ["native passthrough_ll fuse-overlayfs veneer"]
#                      (SUITE=image: "native squashfs squashfuse squashfuse_ll veneer-image";
#                       SUITE=trace: "native veneer-notrace veneer veneer-watch veneer-file")
#   REPS [5]           interleaved rounds (median reported); the issue asks for >= 5
#   VENEER_MODE [separate]
#                      separate: the harness's own veneer target, i.e.
#                                `veneer mount -f --cache=always CORPUS MNT`
#                      inplace:  veneer is started in place (LOWER == MOUNTPOINT,
#                                so it applies its in-place defaults) through
#                                bench/veneer-inplace, which the harness then sees
#                                at its usual mount point (see that script)
#   VENEER [$REPO/build/veneer]   the binary to measure
#   SHARED_BENCH [$(dirname REPO)/shared/bench/run.sh]
#   SNAPSHOT [1]       1 = measure a copy of the binary taken at start (SCRATCH/veneer-under-test),
#                      so a rebuild of build/veneer during the run cannot mix two versions
#   NO_BUILD [0]       1 = do not run `make -C REPO`
#   NO_INSTALL [0]     1 = do not apt-get install missing packages
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$(dirname "$REPO")/shared/bench/run.sh}
SCRATCH=${1:-${SCRATCH:-/tmp/veneer-bench}}
SUITE=${SUITE:-peers}
case $SUITE in
peers) export TARGETS=${TARGETS:-"native passthrough_ll fuse-overlayfs veneer"} ;;
image) export TARGETS=${TARGETS:-"native squashfs squashfuse squashfuse_ll veneer-image"} ;;
trace) export TARGETS=${TARGETS:-"native veneer-notrace veneer veneer-watch veneer-file"} ;;
config) export TARGETS="native passthrough_ll veneer" ;;	# its own fixed list: bench/run-config.sh
*) echo "bench: error: SUITE must be 'peers', 'image', 'trace' or 'config', not '$SUITE'" >&2; exit 1 ;;
esac
export REPS=${REPS:-5}
VENEER_MODE=${VENEER_MODE:-separate}
VENEER_BIN=${VENEER:-$REPO/build/veneer}
SNAPSHOT=${SNAPSHOT:-1}
NO_BUILD=${NO_BUILD:-0}
NO_INSTALL=${NO_INSTALL:-0}

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ -f "$SHARED_BENCH" ] ||
	die "shared harness not found at $SHARED_BENCH (expected the shared/ directory beside the repository; set SHARED_BENCH=path/to/run.sh)"
if [ "$(id -u)" != 0 ]; then
	die "must run as root (the harness mounts, attaches loop devices and drops caches): sudo $0 $*"
fi
case $SCRATCH in /*) ;; *) die "SCRATCH_DIR must be an absolute path: $SCRATCH" ;; esac
case $VENEER_MODE in separate | inplace) ;; *) die "VENEER_MODE must be 'separate' or 'inplace', not '$VENEER_MODE'" ;; esac

# ------------------------------------------------------------------ packages
# What the harness needs whatever the targets (corpus, images, helpers, fio),
# plus the peer of each requested target. The harness checks its full peer
# list itself and installs whatever of it is still missing.
declare -A CMD_PKG=(
	[fusermount3]=fuse3 [gcc]=gcc [pkg-config]=pkg-config [losetup]=mount [mkfs.ext4]=e2fsprogs
	[mksquashfs]=squashfs-tools [mkfs.erofs]=erofs-utils [fio]=fio [make]=make
)
for t in $TARGETS; do
	case $t in
	fuse-overlayfs) CMD_PKG[fuse-overlayfs]=fuse-overlayfs ;;
	mergerfs) CMD_PKG[mergerfs]=mergerfs ;;
	unionfs-fuse) CMD_PKG[unionfs]=unionfs-fuse ;;
	bindfs) CMD_PKG[bindfs]=bindfs ;;
	squashfuse | squashfuse_ll) CMD_PKG[squashfuse]=squashfuse CMD_PKG[squashfuse_ll]=squashfuse ;;
	esac
done
# the image suite's profile pass (PERF=1, its default) needs perf
[ "$SUITE" = image ] && [ "${PERF:-1}" = 1 ] && CMD_PKG[perf]=linux-perf
need=()
for c in "${!CMD_PKG[@]}"; do command -v "$c" >/dev/null 2>&1 || need+=("${CMD_PKG[$c]}"); done
# passthrough_ll is built by the harness from libfuse3-dev's examples
pkg-config --exists fuse3 2>/dev/null && dpkg -L libfuse3-dev 2>/dev/null | grep -q '/examples/passthrough_ll\.c' ||
	need+=(libfuse3-dev)
if ((${#need[@]})); then
	if [ "$NO_INSTALL" = 1 ]; then
		die "missing packages: ${need[*]} (NO_INSTALL=1; install with: apt-get install -y ${need[*]})"
	fi
	say "installing: ${need[*]}"
	apt-get update -qq || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
fi

# ------------------------------------------------------------------ build
if [ "$NO_BUILD" != 1 ]; then
	say "building veneer (make -C $REPO)"
	make -C "$REPO" >/dev/null || die "build failed: make -C $REPO"
fi
[ -x "$VENEER_BIN" ] || die "veneer binary not found or not executable: $VENEER_BIN"
VENEER_SRC=$VENEER_BIN
if [ "$SNAPSHOT" = 1 ]; then
	mkdir -p "$SCRATCH" || die "cannot create $SCRATCH"
	cp "$VENEER_BIN" "$SCRATCH/veneer-under-test" || die "cannot copy $VENEER_BIN"
	VENEER_BIN=$SCRATCH/veneer-under-test
fi
VREV=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)

# ------------------------------------------------------------------ run
if [ "$SUITE" = image ]; then
	say "image suite: bench/run-image.sh, scratch: $SCRATCH   targets: $TARGETS   reps: $REPS   veneer: $VENEER_SRC at $VREV"
	VENEER=$VENEER_BIN exec bash "$REPO/bench/run-image.sh" "$SCRATCH"
fi
if [ "$SUITE" = trace ]; then
	say "trace suite: bench/run-trace.sh, scratch: $SCRATCH   targets: $TARGETS   reps: $REPS   veneer: $VENEER_SRC at $VREV"
	VENEER=$VENEER_BIN exec bash "$REPO/bench/run-trace.sh" "$SCRATCH"
fi
if [ "$SUITE" = config ]; then
	say "config suite: bench/run-config.sh, scratch: $SCRATCH   reps: $REPS   veneer: $VENEER_SRC at $VREV"
	VENEER=$VENEER_BIN exec bash "$REPO/bench/run-config.sh" "$SCRATCH"
fi
if [ "$VENEER_MODE" = inplace ]; then
	export VENEER_REAL=$VENEER_BIN
	export VENEER=$REPO/bench/veneer-inplace
else
	export VENEER=$VENEER_BIN
fi
say "harness: $SHARED_BENCH"
say "scratch: $SCRATCH   targets: $TARGETS   reps: $REPS   veneer: $VENEER_SRC at $VREV ($VENEER_MODE)"
OUTD=${OUT:-$SCRATCH}
mkdir -p "$OUTD" || die "cannot create $OUTD"
STARTED=$(mktemp "$OUTD/.bench-start.XXXXXX")
t0=$EPOCHREALTIME
bash "$SHARED_BENCH" "$SCRATCH"
rc=$?
secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')

MD=$(ls -t "$OUTD"/results-*.md 2>/dev/null | head -1)
if [ -n "$MD" ] && [ "$MD" -nt "$STARTED" ]; then
	{
		echo
		echo "## bench/run.sh"
		echo
		echo "- veneer: $VENEER_SRC ($("$VENEER_BIN" --version 2>&1 | head -1), repository at $VREV$([ "$SNAPSHOT" = 1 ] && echo ", copied to $VENEER_BIN before the run")), mode: $VENEER_MODE"
		if [ "$VENEER_MODE" = inplace ]; then
			echo "- the veneer column was mounted in place (bench/veneer-inplace: bind of the corpus, \`veneer mount -f --cache=always ${VENEER_INPLACE_ARGS:-}B\` with LOWER == MOUNTPOINT, then moved to the harness's mount point); the harness's option line above still says \"separate mount point\""
		fi
		echo "- command: TARGETS=\"$TARGETS\" REPS=$REPS VENEER_MODE=$VENEER_MODE bench/run.sh $SCRATCH (wall time $secs s)"
	} >>"$MD"
	say "report: $MD"
fi
rm -f "$STARTED"
if [ -n "$(ls "$SCRATCH"/log/veneer*.log 2>/dev/null)" ]; then
	say "veneer daemon logs: $(ls "$SCRATCH"/log/veneer*.log | tr '\n' ' ')"
fi
exit "$rc"
