/*
 * The load arguments of the built-in filters: "KEY=VALUE" lines, as the
 * command line's options become them (src/cli/cmd_mount.c).  A value runs
 * to the end of its line, so paths keep their commas, colons and spaces.
 */
#ifndef VENEER_FILTER_ARGS_H
#define VENEER_FILTER_ARGS_H

/*
 * Calls FN with each line's key and value (NULL for a line without '=')
 * in order; ARGS may be NULL.  Stops at FN's first nonzero return and
 * returns it, or -ENOMEM; 0 when all lines were taken.
 */
int filter_args_each(const char *args, int (*fn)(const char *key, const char *value, void *arg),
		     void *arg);

#endif
