#!/bin/sh
# Installs what building and testing veneer needs from Debian's packages.
# As root it runs apt-get; as anyone else it prints the exact install line.
#   install-deps.sh          what building needs
#   install-deps.sh --deb    ... and building the Debian packages (make deb)
#   install-deps.sh --test   ... and running the tests (make check), which
#                            build, install and check the packages too
set -eu

BUILD_PKGS="gcc meson ninja-build pkg-config libfuse3-dev fuse3 libsquashfuse-dev liblzma-dev squashfs-tools libssl-dev libcurl4-openssl-dev liburing-dev"
TEST_PKGS="python3 python3-pytest python3-prometheus-client systemd gdb git sqlite3 rsync tar findutils grep diffutils procps psmisc clang libclang-rt-14-dev cryptsetup-bin openssl nginx"

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

# The tests start nginx themselves, on a free port, as a plain process.  Its
# package would start a system service on port 80: a policy-rc.d that denies
# every start keeps it (and any other service installed here) from running,
# with or without systemd, and is removed afterwards unless it was there.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$policy"
	chmod 755 "$policy"
	own_policy=1
	trap 'rm -f "$policy"' EXIT
fi
# shellcheck disable=SC2086
apt-get install -y -qq $missing >/dev/null
[ -n "$own_policy" ] && rm -f "$policy"
trap - EXIT

# A policy-rc.d of the machine's own may allow starts: stop and disable the
# service whatever started it.
case " $missing " in
*" nginx "*)
	if [ -d /run/systemd/system ]; then
		systemctl disable --now nginx.service >/dev/null 2>&1 || true
	else
		if [ -x /etc/init.d/nginx ]; then
			/etc/init.d/nginx stop >/dev/null 2>&1 || true
		fi
		update-rc.d nginx disable >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
