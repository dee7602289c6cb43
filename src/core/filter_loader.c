/* dlopen() of filters built against include/veneer/filter.h; see filter_loader.h. */
#include "core/filter_loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/filter_manager.h"

/* Splits "PATH.so:ARGS" at the first ':' after ".so"; a path without ".so:" has no args. */
static char *split_spec(const char *spec, const char **ret_args)
{
	char *path = strdup(spec);
	if (!path)
		return NULL;
	char *so = strstr(path, ".so:");
	*ret_args = NULL;
	if (so) {
		so[3] = '\0';
		*ret_args = spec + (so - path) + 4;
	}
	return path;
}

/*
 * The registration every filter goes through, built in or loaded: the
 * version and size checks, then the stack (at mount, or LIVE).  ORIGIN:
 * the object's path, NULL for a built-in filter.
 */
static int register_ops(const struct vn_filter_ops *ops, const char *args, void *dl_handle,
			const char *origin, bool live, bool opens_skipped, char *err, size_t errlen)
{
	const char *what = origin ? origin : ops->name ? ops->name : "built-in";
	int r = fm_ops_check(ops, what, err, errlen);
	if (r < 0)
		return r;
	if (live)
		return fm_load_live(ops, args, dl_handle, origin, opens_skipped, err, errlen);
	return fm_register(ops, args, dl_handle, origin, err, errlen);
}

int filter_register_builtin(const struct vn_filter_ops *ops, const char *args, char *err,
			    size_t errlen)
{
	return register_ops(ops, args, NULL, NULL, false, false, err, errlen);
}

/*
 * Loads the object of SPEC and registers it: at mount (LIVE false) or on a
 * live mount, where OPENS_SKIPPED refuses a filter that needs every open.
 */
static int load(const char *spec, bool live, bool opens_skipped, const char **ret_name,
		char *err, size_t errlen)
{
	const char *args;
	char *path = split_spec(spec, &args);
	if (!path) {
		snprintf(err, errlen, "out of memory loading filter '%s'", spec);
		return -ENOMEM;
	}
	int r = -EINVAL;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "cannot load filter '%s': %s", path, dlerror());
		goto out;
	}
	const struct vn_filter_ops *ops = dlsym(h, VN_FILTER_ENTRY_SYMBOL);
	if (!ops) {
		snprintf(err, errlen, "filter '%s' does not export '%s'", path, VN_FILTER_ENTRY_SYMBOL);
		goto out_close;
	}
	r = register_ops(ops, args, h, path, live, opens_skipped, err, errlen);
	if (r < 0)
		goto out_close;
	if (ret_name)
		*ret_name = ops->name;
	free(path);
	return 0;
out_close:
	dlclose(h);
out:
	free(path);
	return r;
}

int filter_load(const char *spec, char *err, size_t errlen)
{
	return load(spec, false, false, NULL, err, errlen);
}

int filter_load_live(const char *spec, bool opens_skipped, const char **ret_name, char *err,
		     size_t errlen)
{
	return load(spec, true, opens_skipped, ret_name, err, errlen);
}
