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

int filter_load(const char *spec, char *err, size_t errlen)
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
	if (ops->api_version < VN_FILTER_API_MIN_VERSION ||
	    ops->api_version > VN_FILTER_API_VERSION) {
		snprintf(err, errlen,
			 "filter '%s' was built for filter API %u, this veneer loads %u to %u",
			 path, ops->api_version, VN_FILTER_API_MIN_VERSION, VN_FILTER_API_VERSION);
		goto out_close;
	}
	r = fm_register(ops, args, h, path);
	if (r < 0) {
		snprintf(err, errlen, "filter '%s' refused to attach: %s", path, strerror(-r));
		goto out_close;
	}
	free(path);
	return 0;
out_close:
	dlclose(h);
out:
	free(path);
	return r;
}
