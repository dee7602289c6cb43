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
 * Registers the trace filter (unless cfg->no_trace) on top and the
 * virtualization filter, starts the trace file and attaches the layers
 * named at mount.  0, or -errno with a one-line message in err.
 */
int builtin_filters_start(const struct session_config *cfg, char *err, size_t errlen);

/* Stops what builtin_filters_start started outside the stack (the trace file). */
void builtin_filters_stop(void);

#endif
