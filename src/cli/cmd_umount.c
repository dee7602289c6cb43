/* veneer umount [-l] MOUNTPOINT */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>

#include "cli/cli.h"
#include "cli/mount_table.h"

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
	int r = mount_table_unmount(path, lazy);
	if (r == -EBUSY) {
		fprintf(stderr, "veneer: '%s' is busy (files are open or processes work in it); "
				"'veneer umount -l' detaches it lazily\n", path);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "veneer: cannot unmount '%s': %s\n", path, strerror(-r));
		return 1;
	}
	return 0;
}
