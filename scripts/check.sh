#!/usr/bin/env bash
# Runs every suite: the check that every program the tests run is
# installed by scripts/install-deps.sh; unit tests and integration tests on
# a real FUSE mount, with the plain build and again under ASan+UBSan; the
# concurrency stress test under TSan; a short fuzzing run (scripts/fuzz.sh).
# Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
results=$(mktemp -d /tmp/veneer-check.XXXXXX)
trap 'rm -rf "$results"' EXIT

setup() {	# setup DIR [meson options...]
	local dir=$1; shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >"$results/setup-$(basename "$dir").log" 2>&1 ||
			{ cat "$results/setup-$(basename "$dir").log"; return 1; }
	fi
	ninja -C "$dir" >"$results/ninja-$(basename "$dir").log" 2>&1 ||
		{ cat "$results/ninja-$(basename "$dir").log"; return 1; }
}

# The programs the tests run, each from a package that install-deps.sh
# installs or that every Debian system has (scripts/programs.tsv); one test.
echo "== programs the tests run (scripts/check-programs.py)"
if /usr/bin/python3 scripts/check-programs.py; then
	echo "1 0" >"$results/count-programs"
else
	echo "0 1" >"$results/count-programs"
fi

build_failed=0
setup build || build_failed=$((build_failed + 1))
setup build-asan -Db_sanitize=address,undefined -Db_lundef=false || build_failed=$((build_failed + 1))
setup build-tsan -Db_sanitize=thread -Db_lundef=false || build_failed=$((build_failed + 1))

# Unit tests (meson test): counted from its own summary.
unit() {	# unit BUILDDIR LABEL
	local out="$results/unit-$2.log"
	meson test -C "$1" --no-rebuild --print-errorlogs >"$out" 2>&1
	cat "$out" | tail -n 15
	local ok fail
	ok=$(awk '/^Ok:/ {print $2}' "$out"); fail=$(awk '/^Fail:/ {print $2}' "$out")
	local to; to=$(awk '/^Timeout:/ {print $2}' "$out")
	echo "${ok:-0} $(( ${fail:-0} + ${to:-0} ))" >"$results/count-unit-$2"
}

# Integration tests (pytest): counted from its junit report.  OPENS, when
# set, is the --opens mode of every mount that does not choose its own;
# URING=1 adds --uring to every mount.
integ() {	# integ BUILDDIR LABEL [pytest args...] [-- test files]
	local dir=$1 label=$2; shift 2
	local sanitizer=${label%%-*} args=() files=(tests)
	while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
	[ "${1:-}" = -- ] && { shift; files=("$@"); }
	echo "== integration tests ($label)"
	VENEER="$top/$dir/veneer" VENEER_BUILD="$top/$dir" VENEER_SANITIZER="$sanitizer" \
		VENEER_TEST_OPENS="${OPENS:-}" VENEER_TEST_URING="${URING:-}" \
		timeout -k 30 1500 /usr/bin/python3 -m pytest -q -p no:cacheprovider \
		--junitxml="$results/junit-$label.xml" "${args[@]}" "${files[@]}"
	/usr/bin/python3 - "$results/junit-$label.xml" >"$results/count-integ-$label" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 1"); sys.exit()
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
sk = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - sk, f)
PY
}

if [ "$build_failed" -eq 0 ]; then
	unit build plain
	unit build-asan asan
	integ build plain
	# The passthrough matrix: the suites that exercise data, mmap, layers,
	# crashes and other users again with --opens=passthrough (plain build;
	# test_passthrough.py itself runs in every configuration).
	OPENS=passthrough integ build plain-passthrough -- tests/test_ops.py \
		tests/test_differential.py tests/test_programs.py tests/test_layer_programs.py \
		tests/test_layers.py tests/test_faults.py tests/test_users.py tests/test_acl.py
	# The io_uring matrix: data, crashes and other users again with --uring
	# (plain build; test_uring.py itself runs in every configuration).
	URING=1 integ build plain-uring -- tests/test_ops.py tests/test_differential.py \
		tests/test_faults.py tests/test_users.py
	integ build-asan asan
	integ build-tsan tsan -m stress
fi

# Fuzzing (scripts/fuzz.sh): 60 s per target after replaying the must-fail
# inputs; one test.  Without clang it is skipped, except under CI=true.
fuzz() {
	echo "== fuzz (scripts/fuzz.sh 60)"
	if ! command -v clang >/dev/null && [ "${CI:-}" != true ]; then
		echo "fuzz: clang not found, skipped (install clang libclang-rt-14-dev)"
		echo "0 0" >"$results/count-fuzz"
		return
	fi
	if timeout -k 30 900 scripts/fuzz.sh 60; then
		echo "1 0" >"$results/count-fuzz"
	else
		echo "0 1" >"$results/count-fuzz"
	fi
}
fuzz

passed=0; failed=$build_failed
for f in "$results"/count-*; do
	[ -f "$f" ] || continue
	read -r p q <"$f"
	passed=$((passed + p)); failed=$((failed + q))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
