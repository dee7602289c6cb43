/*
 * One mount's daemon: builds the node table, the lower and the filter
 * stack, mounts through libfuse and serves until unmounted or signalled.
 */
#ifndef VENEER_SESSION_H
#define VENEER_SESSION_H

#include <stdbool.h>

#include "frontend/frontend.h"
#include "layer/http_reader.h"

#define SESSION_MAX_FILTERS 15
#define SESSION_MAX_BUILTINS 4

struct session_config {
	const char *lower;		/* as the user gave it, for messages and fsname */
	int lower_fd;			/* O_PATH descriptor of LOWER, opened before the mount */
	const char *mountpoint;		/* absolute */
	struct frontend_config cache;
	char *fuse_opts;		/* comma-separated options for libfuse; owned by caller */
	unsigned int max_threads;	/* 0: libfuse's default */
	const char *filters[SESSION_MAX_FILTERS];	/* "PATH.so[:ARGS]" */
	unsigned int nfilters;
	/*
	 * The built-in filters to register, highest first: "NAME[:ARGS]" as
	 * --filter takes "PATH.so[:ARGS]"; each filter parses its own ARGS.
	 */
	const char *builtins[SESSION_MAX_BUILTINS];
	unsigned int nbuiltins;
	bool act_as_caller;
	bool watch_unmount;		/* our own watcher instead of libfuse's auto_unmount */
	bool background;		/* after mounting, log to syslog and close stderr */
};

/*
 * Mounts and serves.  ready_fd (or -1) receives "ok\n" once the mount is up,
 * or one line of error text; it is closed then.  Returns the exit status.
 */
int session_run(struct session_config *cfg, int ready_fd);

#endif
