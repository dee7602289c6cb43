/*
 * Where a mount's control socket lives, so the CLI finds it from the mount
 * point alone, and creating its directory safely.  It does not open or
 * bind anything.
 *
 * Directory: /run/veneer for root, $XDG_RUNTIME_DIR/veneer for others;
 * $VENEER_RUNTIME_DIR/veneer for anyone when that variable is set (tests,
 * which cannot use /run/veneer while running as root).
 *
 * File name, from the absolute, normalized mount point M:
 *   - the escaped form of M without its leading '/', plus ".sock": '/'
 *     becomes '-', ASCII letters, digits, '_', ':' and '.' (but not a
 *     leading '.') stay, every other byte becomes \xNN (lowercase hex), so
 *     "-" itself is "\x2d".  "/" alone is "-.sock".  Example:
 *     /home/ann/my-data -> home-ann-my\x2ddata.sock.  The escape is
 *     one-to-one, so distinct mount points get distinct names.
 *   - when DIR/NAME would not fit in sun_path (107 bytes and a NUL):
 *     "~" + the 64-bit FNV-1a hash of M in 16 hex digits, then "-" and as
 *     much of the escaped name's tail as fits (whole escapes only), plus
 *     ".sock".  '~' never appears in an escaped name, so the two forms
 *     cannot collide with each other; two hashed names collide only on a
 *     64-bit hash collision between mount points of the same user (each
 *     user has their own directory), i.e. never in practice.
 */
#include "common/hash.h"
#include "control/control.h"
#include "control/control_proto.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* The longest socket path: sun_path less its terminating NUL. */
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)

int control_socket_dir(uid_t uid, char *buf, size_t size)
{
	const char *base = getenv("VENEER_RUNTIME_DIR");
	if (!base || !*base) {
		base = uid == 0 ? "/run" : getenv("XDG_RUNTIME_DIR");
		if (!base || !*base)
			return -ENOENT;
	}
	int n = snprintf(buf, size, "%s/veneer", base);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

/* Absolute, no empty, "." or ".." component, no trailing '/' (but "/"). */
static bool is_normalized(const char *m)
{
	if (m[0] != '/')
		return false;
	if (!strcmp(m, "/"))
		return true;
	for (const char *c = m; c; c = strchr(c + 1, '/')) {
		const char *name = c + 1;
		size_t len = strcspn(name, "/");
		if (len == 0 || (len == 1 && name[0] == '.') ||
		    (len == 2 && name[0] == '.' && name[1] == '.'))
			return false;
	}
	return true;
}

static bool keep_byte(unsigned char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c == '_' || c == ':' || (c == '.' && !first);
}

/* Escapes M (after its leading '/') into a malloc'd string; see the top. */
static char *escape_mountpoint(const char *m)
{
	const char *s = m + 1;
	if (!*s)
		return strdup("-");
	char *out = malloc(strlen(s) * 4 + 1);
	if (!out)
		return NULL;
	char *p = out;
	for (const char *c = s; *c; c++) {
		unsigned char b = (unsigned char)*c;
		if (b == '/')
			*p++ = '-';
		else if (keep_byte(b, c == s))
			*p++ = (char)b;
		else
			p += sprintf(p, "\\x%02x", b);
	}
	*p = '\0';
	return out;
}

/*
 * The start of the longest tail of ESC that is at most AVAIL bytes and
 * does not begin inside a \xNN escape.
 */
static const char *readable_tail(const char *esc, size_t avail)
{
	size_t len = strlen(esc);
	size_t i = 0;
	while (len - i > avail)
		i += esc[i] == '\\' ? 4 : 1;
	return esc + i;
}

int control_socket_path_in(const char *dir, const char *mountpoint, char *buf, size_t size)
{
	if (!is_normalized(mountpoint))
		return -EINVAL;
	if (strlen(mountpoint) >= PATH_MAX)
		return -ENAMETOOLONG;
	char *esc = escape_mountpoint(mountpoint);
	if (!esc)
		return -ENOMEM;
	char path[SUN_PATH_MAX + 1];
	int r = 0;
	int n = snprintf(path, sizeof(path), "%s/%s.sock", dir, esc);
	if (n < 0 || (size_t)n > SUN_PATH_MAX) {
		/* "DIR/~" + 16 hex + ".sock", then "-" + tail if room is left */
		size_t fixed = strlen(dir) + 2 + 16 + 5;
		if (fixed > SUN_PATH_MAX) {
			r = -ENAMETOOLONG;
			goto out_free;
		}
		size_t avail = SUN_PATH_MAX - fixed;
		const char *tail = avail > 1 ? readable_tail(esc, avail - 1) : "";
		n = snprintf(path, sizeof(path), "%s/~%016llx%s%s.sock", dir,
			     (unsigned long long)fnv1a_str(mountpoint), *tail ? "-" : "", tail);
		if (n < 0 || (size_t)n > SUN_PATH_MAX) {
			r = -ENAMETOOLONG;	/* cannot happen: the sizes were counted */
			goto out_free;
		}
	}
	if (strlen(path) >= size) {
		r = -ENAMETOOLONG;
		goto out_free;
	}
	strcpy(buf, path);
out_free:
	free(esc);
	return r;
}

int control_socket_path(const char *mountpoint, uid_t uid, char *buf, size_t size)
{
	char dir[PATH_MAX];
	int r = control_socket_dir(uid, dir, sizeof(dir));
	if (r < 0)
		return r;
	return control_socket_path_in(dir, mountpoint, buf, size);
}

/* The final check on the socket directory: ours, a directory, and only ours to write. */
static int check_dir(const char *dir, uid_t owner)
{
	struct stat st;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != owner || (st.st_mode & 022))
		return -EPERM;
	return 0;
}

int control_make_dir(const char *dir, uid_t owner)
{
	if (dir[0] != '/')
		return -EINVAL;
	char *copy = strdup(dir);
	if (!copy)
		return -ENOMEM;
	int r = 0;
	/* mkdir -p: each missing level is created 0700; existing ones are left as they are */
	for (char *p = copy + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST) {
			r = -errno;
			goto out_free;
		}
		*p = saved;
		if (!saved)
			break;
	}
	r = check_dir(dir, owner);
out_free:
	free(copy);
	return r;
}
