#!/bin/sh
# Builds the Debian packages from debian/ into OUTDIR (default build-deb),
# then checks them with lintian.  dpkg-buildpackage writes its results
# beside the tree it builds, so it builds a copy: the tracked files and the
# new ones git does not ignore, as they are now (outside git: all but the
# build directories).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$top/build-deb}")
work=$(mktemp -d "${TMPDIR:-/tmp}/veneer-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

mkdir "$work/veneer"
cd "$top"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files --cached --others --exclude-standard |
		while IFS= read -r f; do [ -e "$f" ] && printf '%s\n' "$f"; done |
		tar -cf - -T - | tar -xf - -C "$work/veneer"
else	# an unpacked tarball: everything but the build directories
	tar --exclude='./build*' -cf - . | tar -xf - -C "$work/veneer"
fi

cd "$work/veneer"
dpkg-buildpackage -b -us -uc >"$work/build.log" 2>&1 || {
	tail -n 40 "$work/build.log" >&2
	echo "veneer: dpkg-buildpackage failed (log above)" >&2
	exit 1
}

mkdir -p "$out"
rm -f "$out"/veneer*.deb "$out"/libveneer-client*.deb "$out"/veneer_*.changes "$out"/veneer_*.buildinfo
mv "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo "$out"/
cd "$out"
# errors fail the build; warnings and notes are printed for the record
lintian --fail-on error --tag-display-limit 0 veneer_*.changes
ls "$out"/*.deb
