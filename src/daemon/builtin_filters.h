/*
 * The filters compiled into the program, and the one place that names
 * them: registered through the same path as a loaded filter
 * (filter_register_builtin), then given what the mount asked of them.
 */
#ifndef VENEER_BUILTIN_FILTERS_H
#define VENEER_BUILTIN_FILTERS_H

#include <stddef.h>

#include "daemon/session.h"

/*
 * Tells the built-in filters the mount point and the lower, then
 * registers those cfg->builtins names, in order, each with its ARGS (the
 * trace file, the layers), which the filter parses.  0, or -errno with a
 * one-line message in err.
 */
int builtin_filters_start(const struct session_config *cfg, char *err, size_t errlen);

/* Stops what the built-in filters run beside the stack (the trace file), before they are freed. */
void builtin_filters_stop(void);

#endif
