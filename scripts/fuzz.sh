#!/usr/bin/env bash
# Fuzzes the layer source (squashfs images) and the control protocol with
# libFuzzer: builds the targets of tests/fuzz/ into build-fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined), builds the seed corpus, replays
# every must-fail input of tests/fuzz/crashers/, then runs each target for
# SECONDS (default 30).  Exits non-zero on any crash, leak, timeout or
# out-of-memory, printing the reproducer's path.
#
#   scripts/fuzz.sh [SECONDS]          all targets
#   FUZZ_TARGETS="source" scripts/fuzz.sh 600
#   FUZZ_JOBS=4 scripts/fuzz.sh 3600   4 parallel workers per target
#   build-fuzz/fuzz_source FILE        replay one input (VENEER_FUZZ_LOG=1: logs)
#
# New inputs found are kept in build-fuzz/corpus-found/TARGET (reused by
# the next run); reproducers go to build-fuzz/artifacts/TARGET/.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
secs=${1:-30}
out=${FUZZ_BUILD:-build-fuzz}
targets=${FUZZ_TARGETS:-"source control_proto control_server"}
jobs=${FUZZ_JOBS:-1}
CC=${CC_FUZZ:-clang}

if ! command -v "$CC" >/dev/null; then
	echo "fuzz: $CC not found (install clang and libclang-rt-14-dev)" >&2
	exit 1
fi
mkdir -p "$out/obj"

common=(-g -O1 -std=gnu17 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DVENEER_VERSION='"fuzz"'
	-Iinclude -Isrc -Wall -Wextra -Wno-unused-parameter -Werror
	-fsanitize=address,undefined -fno-sanitize-recover=undefined
	-fno-omit-frame-pointer)
sqfs_cflags=$(pkg-config --cflags squashfuse) || { echo "fuzz: no squashfuse.pc" >&2; exit 1; }
sqfs_libs=$(pkg-config --libs squashfuse liblzma libcrypto libcurl)

# compile SRC: the project's code with coverage but without libFuzzer's main
compile() {
	local src=$1 extra=${2:-} obj
	obj=$out/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')
	# shellcheck disable=SC2086
	"$CC" "${common[@]}" -fsanitize=fuzzer-no-link $extra -c "$src" -o "$obj" || return 1
	echo "$obj"
}

# link NAME OBJS...: one target, with libFuzzer's main
link() {
	local name=$1; shift
	# shellcheck disable=SC2086
	"$CC" "${common[@]}" -fsanitize=fuzzer "$@" $sqfs_libs -lpthread -o "$out/fuzz_$name"
}

build() {
	local objs=() o s
	# layer sources; log.c is replaced by tests/fuzz/fuzz_log.c, which stays quiet
	for s in src/layer/source.c src/layer/source_dir.c src/layer/dir_index.c \
		src/layer/xz_bounded.c src/layer/verity.c src/layer/image_reader.c \
		src/layer/http_reader.c src/layer/chunk_cache.c; do
		o=$(compile "$s") || return 1; objs+=("$o")
	done
	o=$(compile src/layer/source_squashfs.c "$sqfs_cflags") || return 1; objs+=("$o")
	o=$(compile tests/fuzz/fuzz_log.c) || return 1; local log=$o
	o=$(compile tests/fuzz/fuzz_source.c) || return 1
	link source "$o" "${objs[@]}" "$log" || return 1

	local ctl=()
	for s in src/control/control_proto.c src/control/control_path.c \
		src/control/control_server.c src/filters/trace/trace_query.c \
		src/filters/virtualize/vz_paths.c src/core/vn_api.c src/core/opcode_table.c; do
		o=$(compile "$s") || return 1; ctl+=("$o")
	done
	o=$(compile tests/fuzz/fuzz_control_proto.c) || return 1
	link control_proto "$o" "${ctl[@]}" "$log" || return 1
	o=$(compile tests/fuzz/fuzz_control_server.c) || return 1
	link control_server "$o" "${ctl[@]}" "$log" || return 1
}

echo "== fuzz: building targets in $out"
if ! build; then
	echo "fuzz: build failed" >&2
	exit 1
fi
echo "== fuzz: building the seed corpus"
VENEER=${VENEER:-$top/build/veneer} tests/fuzz/make-corpus.sh "$out/corpus" || { echo "fuzz: corpus failed" >&2; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0

corpus_of() {	# the seed corpus directory of a target
	case $1 in
	source) echo "$out/corpus/source" ;;
	*) echo "$out/corpus/control" ;;
	esac
}

# replay NAME TARGET [VAR=VALUE...] -- FILES...: every file through fuzz_TARGET
replay() {
	local name=$1 target=$2 vars=() log bad
	shift 2
	while [ "$1" != -- ]; do vars+=("$1"); shift; done
	shift
	log=$out/replay-$name.log
	if ! env "${vars[@]}" "$out/fuzz_$target" -rss_limit_mb=2048 -timeout=10 "$@" >"$log" 2>&1; then
		tail -n 40 "$log"
		bad=$(grep -o "Running: [^ ]*" "$log" | tail -n 1 | cut -d' ' -f2)
		echo "fuzz: FAILED replaying $name: reproducer: $top/${bad:-tests/fuzz/crashers/$name}" >&2
		failed=1
	else
		echo "   $name: $# inputs replayed"
	fi
}

# Must-fail inputs: each must be handled without a crash (and an image
# refused at open: VENEER_FUZZ_EXPECT_REFUSED, which only fuzz_source reads).
echo "== fuzz: replaying tests/fuzz/crashers"
for t in $targets; do
	files=(tests/fuzz/crashers/$t/*)
	[ -e "${files[0]}" ] && replay "$t" "$t" VENEER_FUZZ_EXPECT_REFUSED=1 -- "${files[@]}"
done
# images that open but must survive the walk (the damage lies deeper)
walk=(tests/fuzz/crashers/source-walk/*)
if [[ " $targets " == *" source "* && -e "${walk[0]}" ]]; then
	replay source-walk source -- "${walk[@]}"
fi

for t in $targets; do
	found=$out/corpus-found/$t art=$out/artifacts/$t
	mkdir -p "$found" "$art"
	log=$out/fuzz-$t.log
	echo "== fuzz: $t for ${secs}s (log: $log)"
	# a fixed seed: the same inputs in the same order on every machine, so a
	# run in make check finds only what a run here would have found first
	args=(-seed="${FUZZ_SEED:-1}" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
	      -artifact_prefix="$art/" "$found" "$(corpus_of "$t")")
	# images are kilobytes from the start: mutate them whole, not from short inputs up
	[ "$t" = source ] && args=(-max_len=65536 -len_control=0 "${args[@]}")
	if [ "$jobs" -gt 1 ]; then
		args=(-fork="$jobs" -ignore_crashes=0 "${args[@]}")
	fi
	"$out/fuzz_$t" "${args[@]}" >"$log" 2>&1
	rc=$?
	grep -E "^stat::number_of_executed_units|^#[0-9]+ *DONE" "$log" | tail -n 2 | sed 's/^/   /'
	repro=$(grep -oE "(Test unit written to|artifact_prefix.*; Test unit written to) [^ ]+" \
		"$log" | awk '{print $NF}' | tail -n 1)
	if [ $rc -ne 0 ] || [ -n "$repro" ]; then
		grep -E "ERROR: |SUMMARY: |runtime error|fuzz_source:|fuzz_control" "$log" | head -n 5
		echo "fuzz: FAILED $t (exit $rc): reproducer: ${repro:-see $log}" >&2
		echo "fuzz: replay with: $out/fuzz_$t ${repro:-FILE}" >&2
		failed=1
	fi
done
[ $failed -eq 0 ] && echo "== fuzz: no crash, leak or timeout"
exit $failed
