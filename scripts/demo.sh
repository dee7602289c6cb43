#!/usr/bin/env bash
# The demo: mounts veneer in place over a copy of the bundled example tree,
# works in it through the mount, shows that the real files changed, and
# cleans up.  Usage: scripts/demo.sh path/to/veneer
set -euo pipefail
veneer=$(realpath "${1:-build/veneer}")
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/veneer-demo.XXXXXX)
cleanup() {
	grep -qs " $work/project fuse.veneer " /proc/mounts && "$veneer" umount -l "$work/project" || true
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cp -a "$top/examples/demo-tree" "$work/project"
step "veneer mount $work/project   (in place: the mount covers the real directory)"
"$veneer" mount "$work/project"
grep " $work/project " /proc/mounts

step "the covered files are all there, through the mount"
(cd "$work/project" && find . -type f | sort && cat README.txt)

step "work in the mount: create, append, rename, remove"
(
	cd "$work/project"
	echo "written through veneer" > notes.txt
	echo "one more line" >> src/hello.c
	mv docs/guide.md docs/manual.md
	rm -f scratch.tmp
	ls -l . docs
)

step "veneer pack: a squashfs image of the bundled tool layer, with its hash tree"
packed=$("$veneer" pack "$top/examples/demo-layer" -o "$work/tools.sqfs")
echo "$packed"
digest=${packed##*digest: }
"$veneer" ls "$work/tools.sqfs" /bin
"$veneer" verify "$work/tools.sqfs"

step "veneer attach: project the image at /tools of the live mount, pinned to its digest"
"$veneer" attach --digest "$digest" "$work/project" "$work/tools.sqfs" /tools
"$veneer" status "$work/project"
ls -l "$work/project" "$work/project/tools/bin"
"$work/project/tools/bin/greet"

step "virtual files are read-only; real ones are not"
echo "try to change it" > "$work/project/tools/bin/greet" || true
rm "$work/project/tools/bin/greet" || true

step "veneer detach: the layer is gone from the view"
"$veneer" detach "$work/project" /tools
ls "$work/project"

step "veneer umount $work/project"
"$veneer" umount "$work/project"

step "the real directory holds every change"
(cd "$work/project" && find . -type f | sort && cat notes.txt && tail -n 1 src/hello.c)
echo
echo "demo finished"
