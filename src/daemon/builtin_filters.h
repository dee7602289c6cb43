/*
 * The filters compiled into the program, and the one place that names
 * them: registered through the same path as a loaded filter
 * (filter_register_builtin), then given what the mount asked of them.
 */
#ifndef VENEER_BUILTIN_FILTERS_H
#define VENEER_BUILTIN_FILTERS_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon/session.h"

/*
 * Tells the built-in filters the mount point and the lower, then
 * registers those cfg->builtins names, in order, each with its ARGS (the
 * trace file, the layers), which the filter parses.  0, or -errno with a
 * one-line message in err.
 */
int builtin_filters_start(const struct session_config *cfg, char *err, size_t errlen);

/*
 * A built-in's part of `veneer status` (docs/status.md): STATUS gives it
 * as text or as JSON members, METRICS in the Prometheus text format; each
 * 0 and *ret_text malloc'd, or -errno.
 */
struct builtin_report {
	int (*status)(bool json, char **ret_text);
	int (*metrics)(char **ret_text);
};

/*
 * The parts that stand before the daemon's own figures (AFTER false: the
 * layers) or after them (the trace's statistics), in the report's order;
 * *ret_n of them.
 */
const struct builtin_report *builtin_filters_reports(bool after, size_t *ret_n);

/*
 * Splits a layer as `--layer` gives it, SRC[:PATH][#sha256:HEX], the way
 * the built-in virtualization filter will read it (the mount command
 * resolves SRC before it passes the layer on): *ret_src, *ret_path ("/"
 * by default) and *ret_digest ("sha256:HEX" or NULL), malloc'd.  0,
 * -EINVAL or -ENOMEM.
 */
int builtin_layer_spec_parse(const char *spec, char **ret_src, char **ret_path,
			     char **ret_digest);

/* Stops what the built-in filters run beside the stack (the trace file), before they are freed. */
void builtin_filters_stop(void);

#endif
