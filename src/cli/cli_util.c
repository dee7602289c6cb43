/* Small helpers shared by the subcommands. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "layer/http_reader.h"

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


static int parse_size(const char *v, uint64_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	unsigned shift = 0;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	}
	if (errno || end == v || *end || v[0] == '-' || n == 0 || n > (UINT64_MAX >> shift))
		return -1;
	*ret = (uint64_t)n << shift;
	return 0;
}

int cli_remote_option(const char *cmd, struct remote_options *o, const char *name,
		      const char *value)
{
	if (!strcmp(name, "cacert")) {
		char *abs = realpath(value, NULL);
		if (!abs) {
			fprintf(stderr, "veneer: %s: --cacert %s: %s\n", cmd, value,
				strerror(errno));
			return -1;
		}
		o->cacert = abs;
		return 1;
	}
	if (!strcmp(name, "cache-dir")) {
		char cwd[PATH_MAX], *abs = NULL;
		if (value[0] == '/')
			abs = strdup(value);
		else if (getcwd(cwd, sizeof(cwd)) && asprintf(&abs, "%s/%s", cwd, value) < 0)
			abs = NULL;
		if (!abs || !value[0]) {
			fprintf(stderr, "veneer: %s: bad --cache-dir '%s'\n", cmd, value);
			return -1;
		}
		o->cache_dir = abs;
		return 1;
	}
	if (!strcmp(name, "cache-size")) {
		if (parse_size(value, &o->cache_size) < 0) {
			fprintf(stderr, "veneer: %s: bad --cache-size '%s' (bytes, or a number with "
				"K, M, G or T)\n", cmd, value);
			return -1;
		}
		return 1;
	}
	if (!strcmp(name, "fetch-timeout")) {
		char *end;
		errno = 0;
		double sec = strtod(value, &end);
		if (errno || end == value || *end || !(sec >= 0.001 && sec <= 86400)) {
			fprintf(stderr, "veneer: %s: bad --fetch-timeout '%s' (seconds, 0.001 to "
				"86400)\n", cmd, value);
			return -1;
		}
		o->timeout_ms = (unsigned)(sec * 1000 + 0.5);
		return 1;
	}
	return 0;
}
