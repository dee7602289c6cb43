/* Loading out-of-tree filters: --filter PATH.so[:ARGS]. */
#ifndef VENEER_FILTER_LOADER_H
#define VENEER_FILTER_LOADER_H

#include <stddef.h>

/*
 * Loads the shared object, checks its vn_filter_entry and API version and
 * registers it.  On failure returns -errno and writes a one-line message
 * naming the object and the reason into err.
 */
int filter_load(const char *spec, char *err, size_t errlen);

#endif
