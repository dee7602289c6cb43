/*
 * Registering filters: out-of-tree ones (--filter PATH.so[:ARGS], `veneer
 * filter load`) and the built-in ones, through the same checks.
 */
#ifndef VENEER_FILTER_LOADER_H
#define VENEER_FILTER_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include <veneer/filter.h>

/*
 * Registers a filter compiled into the program exactly as a loaded one
 * (the same version checks and stack), before the mount serves; ARGS go
 * to its attach.  -errno with a one-line message in err.
 */
int filter_register_builtin(const struct vn_filter_ops *ops, const char *args, char *err,
			    size_t errlen);

/*
 * Loads the shared object, checks its vn_filter_entry and API version and
 * registers it.  On failure returns -errno and writes a one-line message
 * naming the object and the reason into err.
 */
int filter_load(const char *spec, char *err, size_t errlen);

/*
 * The same on a live mount (fm_load_live): OPENS_SKIPPED refuses a filter
 * that needs every open.  *ret_name: the filter's name, valid while it
 * stays loaded.  On the control thread.
 */
int filter_load_live(const char *spec, bool opens_skipped, const char **ret_name, char *err,
		     size_t errlen);

#endif
