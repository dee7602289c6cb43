/* The built-in filters; see builtin_filters.h. */
#include "daemon/builtin_filters.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/filter_loader.h"
#include "filters/trace/trace.h"
#include "filters/virtualize/virtualize.h"
#include "layer/http_reader.h"

static const struct vn_filter_ops *const builtins[] = { &trace_filter_ops, &vz_filter_ops };

static const struct vn_filter_ops *builtin_named(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (strlen(builtins[i]->name) == len && !strncmp(builtins[i]->name, name, len))
			return builtins[i];
	return NULL;
}

int builtin_filters_start(const struct session_config *cfg, char *err, size_t errlen)
{
	trace_mount_init(cfg->mountpoint, cfg->lower_fd);
	http_set_fetch_observer(trace_fetch);	/* remote layers' fetches in the trace */
	vz_admin_init(cfg->mountpoint, cfg->lower_fd);
	/* registered before the loaded filters, so among equal altitudes each sits above them */
	for (unsigned int i = 0; i < cfg->nbuiltins; i++) {
		const char *spec = cfg->builtins[i];
		size_t len = strcspn(spec, ":");
		const struct vn_filter_ops *ops = builtin_named(spec, len);
		if (!ops) {
			snprintf(err, errlen, "no built-in filter '%.*s'", (int)len, spec);
			return -EINVAL;
		}
		const char *args = spec[len] ? spec + len + 1 : NULL;
		int r = filter_register_builtin(ops, args, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

static const struct builtin_report reports_before[] = { { vz_status, vz_metrics } };
static const struct builtin_report reports_after[] = { { trace_status, trace_metrics } };

const struct builtin_report *builtin_filters_reports(bool after, size_t *ret_n)
{
	*ret_n = after ? sizeof(reports_after) / sizeof(reports_after[0])
		       : sizeof(reports_before) / sizeof(reports_before[0]);
	return after ? reports_after : reports_before;
}

int builtin_layer_spec_parse(const char *spec, char **ret_src, char **ret_path,
			     char **ret_digest)
{
	return vz_layer_spec_parse(spec, ret_src, ret_path, ret_digest);
}

void builtin_filters_stop(void)
{
	trace_file_stop();
}
