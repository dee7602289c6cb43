#!/usr/bin/env bash
# Builds the seed corpus of the fuzz targets into OUTDIR (created):
#   OUTDIR/source/   small squashfs images made with mksquashfs: files,
#                    directories, symlinks, hard links, xattrs, devices
#                    (pseudo definitions), a sparse file, every compressor,
#                    fragments or not, uncompressed metadata, a large
#                    directory, long names; and, with VENEER set to a veneer
#                    binary, one packed with a hash tree;
#   OUTDIR/control/  framed control messages (requests and replies).
# Images are generated, never committed: only small must-fail inputs live
# in tests/fuzz/crashers/.  Needs mksquashfs (squashfs-tools); setfattr is
# used when present.
set -euo pipefail
out=${1:?usage: make-corpus.sh OUTDIR}
MKSQUASHFS=${MKSQUASHFS:-$(command -v mksquashfs || echo /usr/sbin/mksquashfs)}
rm -rf "$out"
mkdir -p "$out/source" "$out/control"
work=$(mktemp -d /tmp/veneer-corpus.XXXXXX)
trap 'rm -rf "$work"' EXIT

# mk NAME TREE [mksquashfs options...]: fixed times so the corpus is the same every run
mk() {
	local name=$1 tree=$2; shift 2
	"$MKSQUASHFS" "$tree" "$out/source/$name.sqfs" -noappend -no-progress -quiet \
		-mkfs-time 0 -all-time 0 -nopad "$@" >/dev/null
}

# basic: a bit of everything a layer holds (-noD: uncompressed data, -noI: inodes)
b=$work/basic
mkdir -p "$b/dir/sub" "$b/empty"
printf 'hello\n' >"$b/a.txt"
printf 'bee\n' >"$b/dir/b.txt"
printf 'deep\n' >"$b/dir/sub/c.txt"
: >"$b/zero"
ln -s a.txt "$b/link"
ln -s ../../a.txt "$b/dir/sub/up"
ln -s /etc/passwd "$b/abs"
printf 'same\n' >"$b/hl1"
ln "$b/hl1" "$b/hl2"
mkfifo "$b/fifo"
seq 1 1500 >"$b/dir/mid.txt"
chmod 4755 "$b/dir/b.txt"
if command -v setfattr >/dev/null; then
	setfattr -n user.color -v blue "$b/a.txt"
	setfattr -n user.empty "$b/a.txt"
	setfattr -n user.dir -v "$(printf 'x%.0s' $(seq 300))" "$b/dir"
	setfattr -n trusted.t -v 1 "$b/dir/b.txt" 2>/dev/null || true
fi
for comp in gzip lz4 lzo xz zstd; do
	mk "basic-$comp" "$b" -comp "$comp"
done
mk basic-gzip-4k "$b" -comp gzip -b 4096
mk basic-nofrag "$b" -comp gzip -b 4096 -no-fragments
mk basic-allfrag "$b" -comp lz4 -always-use-fragments
mk basic-uncompressed "$b" -comp gzip -noI -noD -noF -noX
mk basic-noI "$b" -comp zstd -noI
mk basic-noD "$b" -comp zstd -noD -b 4096
mk basic-noexport "$b" -comp gzip -no-exports -no-xattrs
mk basic-allroot "$b" -comp xz -all-root -b 4096
# with a hash tree, for the verity reader, when VENEER names a veneer binary
if [ -x "${VENEER:-}" ]; then
	SOURCE_DATE_EPOCH=0 "$VENEER" pack --force --comp gzip "$b" \
		-o "$out/source/basic-verity.sqfs" >/dev/null
fi

# devices and other special files through pseudo definitions
p=$work/pseudo
mkdir -p "$p"
printf 'x\n' >"$p/f"
mk pseudo "$p" -comp gzip \
	-p 'null c 666 0 0 1 3' -p 'sda b 660 0 6 8 0' -p 'pipe i 644 0 0 f' -p 'plink s 777 0 0 /target' \
	-p 'pdir d 755 1000 1000' -p 'pdir/file f 600 12 34 echo pseudo' \
	-p 'big c 600 0 0 4095 1048575'
mk pseudo-noI "$p" -comp lz4 -noI -noD -p 'null c 666 0 0 1 3' -p 'sock i 600 0 0 s'

# a sparse file: a hole of 1 MiB between data, and a multi-block file
s=$work/sparse
mkdir -p "$s"
printf HEAD >"$s/sparse"
truncate -s 1048576 "$s/sparse"
printf TAIL >>"$s/sparse"
head -c 12000 /dev/zero | tr '\0' 'a' >"$s/blocks"
printf 'tail' >>"$s/blocks"
mk sparse "$s" -comp zstd -b 4096
mk sparse-nofrag "$s" -comp gzip -b 4096 -no-fragments -noD

# a directory with many entries (directory index, name index) and long names
d=$work/bigdir
mkdir -p "$d/many"
for i in $(seq 1 300); do : >"$d/many/entry-with-a-longer-name-$i"; done
long=$(printf 'n%.0s' $(seq 255))
: >"$d/$long"
mkdir -p "$d/a/b/c/d/e/f/g/h"
printf 'x' >"$d/a/b/c/d/e/f/g/h/leaf"
mk bigdir "$d" -comp gzip
mk bigdir-uncompressed "$d" -comp lzo -noI -noD

# degenerate trees
e=$work/empty
mkdir -p "$e"
mk empty "$e" -comp gzip
mk empty-noI "$e" -comp xz -noI -noD

# control messages: a 4-byte little-endian length, then NUL-terminated fields
msg() {	# msg FILE FIELD...
	local f=$1; shift
	/usr/bin/python3 - "$f" "$@" <<'PY'
import struct, sys
body = b"".join(a.encode() + b"\0" for a in sys.argv[2:])
open(sys.argv[1], "wb").write(struct.pack("<I", len(body)) + body)
PY
}
c=$out/control
msg "$c/status-json" status json
msg "$c/status-text" status text
msg "$c/attach" attach /tmp/layer.sqfs /opt/tool
msg "$c/attach-spec" attach '/tmp/a:/b:/c' /
msg "$c/detach" detach 3
msg "$c/detach-path" detach /opt/tool
msg "$c/trace" trace json ops=lookup,read,getattr path=/a/* pid=12 errors slow=100
msg "$c/trace-text" trace text
msg "$c/ok" ok 'layer 3'
msg "$c/err" err 2 'no such layer'
msg "$c/path" path '//a/./b/../c//'
printf '\0\0\0\0' >"$c/empty"
printf '\377\377\377\377' >"$c/huge"
# two messages in a row
cat "$c/status-json" "$c/detach" >"$c/two"
echo "corpus: $(ls "$out/source" | wc -l) images, $(ls "$c" | wc -l) messages in $out"
