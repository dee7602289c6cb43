/* The built-in filters; see builtin_filters.h. */
#include "daemon/builtin_filters.h"

#include <stdint.h>
#include <stdio.h>

#include "core/filter_loader.h"
#include "filters/trace/trace.h"
#include "filters/virtualize/virtualize.h"

int builtin_filters_start(const struct session_config *cfg, char *err, size_t errlen)
{
	/* registered first, so among equal altitudes each sits above the loaded filters */
	int r = cfg->no_trace ? 0 : filter_register_builtin(&trace_filter_ops, NULL, err, errlen);
	if (r == 0)
		r = filter_register_builtin(&vz_filter_ops, NULL, err, errlen);
	if (r < 0)
		return r;
	if (cfg->trace_file) {
		r = trace_file_start(cfg->trace_file, cfg->mountpoint, cfg->lower_fd, err, errlen);
		if (r < 0)
			return r;
	}
	vz_admin_init(cfg->mountpoint, cfg->lower_fd);
	for (unsigned int i = 0; i < cfg->nlayers; i++) {
		char why[1024];
		uint64_t id;
		r = vz_attach(cfg->layers[i].source, cfg->layers[i].path, cfg->layers[i].digest,
			      &id, why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "layer %s", why);
			return r;
		}
	}
	return 0;
}

void builtin_filters_stop(void)
{
	trace_file_stop();
}
