/*
 * veneer prefetch MOUNTPOINT PATH...: reads every regular file under each
 * PATH of the mount's view once, through the mount, so that the chunks of
 * remote layers they lie in are fetched (and verified) now and kept in
 * the chunk cache, and later reads, in this mount or the next one, do not
 * wait for the network.  Local files are read too (the page cache keeps
 * them); it stays on the one mount and follows no symlink.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

#define PREFETCH_BUF (1024 * 1024)

static char *prefetch_buf;
static unsigned long long prefetch_files, prefetch_bytes, prefetch_errors;

static int read_whole(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	ssize_t n;
	while ((n = read(fd, prefetch_buf, PREFETCH_BUF)) > 0)
		prefetch_bytes += (unsigned long long)n;
	int r = n < 0 ? -errno : 0;
	close(fd);
	return r;
}

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	int r = 0;
	if (type == FTW_F && S_ISREG(st->st_mode)) {
		r = read_whole(path);
		if (r == 0)
			prefetch_files++;
	} else if (type == FTW_DNR || type == FTW_NS) {
		r = -EACCES;
	}
	if (r < 0) {
		prefetch_errors++;
		fprintf(stderr, "veneer: prefetch: %s: %s\n", path, strerror(-r));
	}
	return 0;
}

int cmd_prefetch(int argc, char **argv)
{
	static const char usage[] =
		"usage: veneer prefetch MOUNTPOINT PATH...\n"
		"\n"
		"Reads every file under each PATH (absolute, in the mount's view) once, so\n"
		"that remote layers fetch and cache what they hold now.  Prints how many\n"
		"files and bytes it read; exit status 1 if any could not be read.\n";
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc < 3) {
		fputs(usage, stderr);
		return 2;
	}
	char mp[PATH_MAX];
	if (cli_resolve_mountpoint("prefetch", argv[1], mp) < 0)
		return 1;
	prefetch_buf = malloc(PREFETCH_BUF);
	if (!prefetch_buf) {
		fprintf(stderr, "veneer: prefetch: %s\n", strerror(ENOMEM));
		return 1;
	}
	for (int i = 2; i < argc; i++) {
		char path[PATH_MAX];
		if (argv[i][0] != '/') {
			fprintf(stderr, "veneer: prefetch: PATH must be absolute (a path in the "
				"mount's view, such as /opt/data): '%s'\n", argv[i]);
			free(prefetch_buf);
			return 2;
		}
		if (snprintf(path, sizeof(path), "%s%s", strcmp(mp, "/") ? mp : "", argv[i]) >=
			    (int)sizeof(path) ||
		    nftw(path, visit, 32, FTW_PHYS | FTW_MOUNT) < 0) {
			prefetch_errors++;
			fprintf(stderr, "veneer: prefetch: %s: %s\n", path, strerror(errno));
		}
	}
	free(prefetch_buf);
	printf("prefetched %llu files, %llu bytes\n", prefetch_files, prefetch_bytes);
	return prefetch_errors ? 1 : 0;
}
