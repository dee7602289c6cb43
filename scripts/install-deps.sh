#!/bin/sh
# Installs what building and testing veneer needs from Debian's packages.
# As root it runs apt-get; as anyone else it prints the exact install line.
#   install-deps.sh          what building needs
#   install-deps.sh --deb    ... and building the Debian packages (make deb)
#   install-deps.sh --test   ... and running the tests (make check), which
#                            build, install and check the packages too
set -eu

BUILD_PKGS="gcc meson ninja-build pkg-config libfuse3-dev fuse3 libsquashfuse-dev liblzma-dev squashfs-tools libssl-dev libcurl4-openssl-dev liburing-dev"
TEST_PKGS="python3 python3-pytest python3-prometheus-client systemd gdb git sqlite3 rsync tar findutils grep diffutils procps psmisc clang libclang-rt-14-dev cryptsetup-bin openssl"

DEB_PKGS="debhelper dpkg-dev lintian"

case "${1:-}" in
"") want="$BUILD_PKGS" ;;
--deb) want="$BUILD_PKGS $DEB_PKGS" ;;
--test) want="$BUILD_PKGS $DEB_PKGS $TEST_PKGS" ;;
*) echo "usage: install-deps.sh [--deb | --test]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "veneer: missing packages:$missing" >&2
	echo "install them with: sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "veneer: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
# shellcheck disable=SC2086
apt-get install -y -qq $missing >/dev/null
