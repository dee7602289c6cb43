/*
 * What the kernel is told to cache (the --cache timeouts and flags) and the
 * daemon's own descriptor cache, for `veneer status`.
 */
#ifndef VENEER_CACHE_REPORT_H
#define VENEER_CACHE_REPORT_H

#include <stdbool.h>

/* A JSON member ("cache":{...}) or a text line. */
int cache_status(bool json, char **ret_text);
/* The same in the Prometheus text format. */
int cache_metrics(char **ret_text);

#endif
