/* Small helpers shared by the subcommands. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/*
 * MOUNTPOINT made absolute.  realpath() stats the mount point itself,
 * which fails on a FUSE mount for root without allow_other (EACCES) and
 * on a dead one (ENOTCONN): then resolve the parent and keep the last name.
 */
int cli_resolve_mountpoint(const char *cmd, const char *arg, char *out)
{
	if (realpath(arg, out))
		return 0;
	int err = errno;
	if (err == EACCES || err == ENOTCONN) {
		char copy_dir[PATH_MAX], copy_base[PATH_MAX], parent[PATH_MAX];
		snprintf(copy_dir, sizeof(copy_dir), "%s", arg);
		snprintf(copy_base, sizeof(copy_base), "%s", arg);
		const char *base = basename(copy_base);
		if (strcmp(base, ".") && strcmp(base, "..") && strcmp(base, "/") &&
		    realpath(dirname(copy_dir), parent) &&
		    snprintf(out, PATH_MAX, "%s/%s", strcmp(parent, "/") ? parent : "", base) <
			    PATH_MAX)
			return 0;
	}
	fprintf(stderr, "veneer: %s: cannot resolve '%s': %s\n", cmd, arg, strerror(err));
	return -err;
}

