/*
 * veneer umount [-l] MOUNTPOINT: unmounts a veneer mount; a busy one is
 * refused with the processes that hold it, a dead one (its daemon gone) is
 * cleared.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>

#include "cli/cli.h"
#include "cli/mount_table.h"

#define MAX_HOLDERS_SHOWN 20

/* "veneer: umount: PATH: busy (EBUSY): held by PID (COMM), ..." */
static void report_busy(const char *path)
{
	struct mount_holder *holders;
	size_t n;
	fprintf(stderr, "veneer: umount: %s: busy (EBUSY)", path);
	if (mount_table_holders(path, &holders, &n) == 0) {
		if (n == 0)
			fprintf(stderr, ": no holder found (a mount below it, another mount namespace "
					"or another user's process)");
		for (size_t i = 0; i < n && i < MAX_HOLDERS_SHOWN; i++)
			fprintf(stderr, "%s%d (%s)", i ? ", " : ": held by ", (int)holders[i].pid,
				holders[i].comm);
		if (n > MAX_HOLDERS_SHOWN)
			fprintf(stderr, " and %zu more", n - MAX_HOLDERS_SHOWN);
		free(holders);
	}
	fprintf(stderr, "; 'veneer umount -l' detaches it lazily\n");
}

int cmd_umount(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "lazy", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool lazy = false;
	int c;
	while ((c = getopt_long(argc, argv, "+lh", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			lazy = true;
			break;
		case 'h':
			printf("usage: veneer umount [-l] MOUNTPOINT\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "veneer: umount takes exactly one MOUNTPOINT\n");
		return 2;
	}
	const char *arg = argv[optind];
	char path[PATH_MAX];
	if (!realpath(arg, path)) {
		/* a dead mount cannot be resolved (ENOTCONN): use the path as given */
		if (errno != ENOTCONN || strlen(arg) >= sizeof(path)) {
			fprintf(stderr, "veneer: cannot resolve '%s': %s\n", arg, strerror(errno));
			return 1;
		}
		snprintf(path, sizeof(path), "%s", arg);
	}
	char fstype[64];
	if (!mount_table_fstype(path, fstype, sizeof(fstype)) || strcmp(fstype, "fuse.veneer")) {
		fprintf(stderr, "veneer: '%s' is not a veneer mount\n", path);
		return 1;
	}
	/* nothing is left to lose on a dead mount: detach it even when busy */
	if (mount_table_is_dead_veneer(path)) {
		int r = mount_table_unmount(path, true);
		if (r < 0) {
			fprintf(stderr, "veneer: '%s' holds a dead veneer mount that cannot be cleared: %s\n",
				path, strerror(-r));
			return 1;
		}
		fprintf(stderr, "veneer: cleared a dead veneer mount at '%s'\n", path);
		return 0;
	}
	int r = mount_table_unmount(path, lazy);
	if (r == -EBUSY) {
		report_busy(path);
		return 1;
	}
	if (r == -EPERM) {
		fprintf(stderr, "veneer: cannot unmount '%s': not your mount\n", path);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "veneer: cannot unmount '%s': %s\n", path, strerror(-r));
		return 1;
	}
	return 0;
}
