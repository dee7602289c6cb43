/*
 * The cache figures of `veneer status`: the timeouts and flags the frontend
 * gives the kernel, and the descriptors the node table keeps open.  The
 * kernel's own hit counts are not visible to the daemon.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/node_table.h"
#include "frontend/cache_report.h"
#include "frontend/fuse_request.h"

int cache_status(bool json, char **ret_text)
{
	const struct frontend_config *c = &frontend.cfg;
	size_t fds = frontend.nodes ? node_table_fds_cached(frontend.nodes) : 0;
	int n;
	if (json)
		n = asprintf(ret_text, "\"cache\":{\"entry_timeout_s\":%g,\"attr_timeout_s\":%g,"
			     "\"negative_timeout_s\":%g,\"keep_pages\":%s,\"listings\":%s,"
			     "\"descriptors\":%zu}", c->entry_timeout, c->attr_timeout,
			     c->negative_timeout, c->keep_cache ? "true" : "false",
			     c->cache_readdir ? "true" : "false", fds);
	else
		n = asprintf(ret_text, "kernel cache: names %gs, attributes %gs, missing names %gs; "
			     "pages %s, listings %s; descriptors cached: %zu\n", c->entry_timeout,
			     c->attr_timeout, c->negative_timeout,
			     c->keep_cache ? "kept" : "dropped at open",
			     c->cache_readdir ? "cached" : "not cached", fds);
	if (n < 0) {
		*ret_text = NULL;
		return -ENOMEM;
	}
	return 0;
}

int cache_metrics(char **ret_text)
{
	const struct frontend_config *c = &frontend.cfg;
	size_t fds = frontend.nodes ? node_table_fds_cached(frontend.nodes) : 0;
	if (asprintf(ret_text,
		     "# HELP veneer_cache_timeout_seconds How long the kernel keeps what it learns.\n"
		     "# TYPE veneer_cache_timeout_seconds gauge\n"
		     "veneer_cache_timeout_seconds{kind=\"entry\"} %g\n"
		     "veneer_cache_timeout_seconds{kind=\"attr\"} %g\n"
		     "veneer_cache_timeout_seconds{kind=\"negative\"} %g\n"
		     "# HELP veneer_cache_keep_pages Whether file pages stay cached across opens.\n"
		     "# TYPE veneer_cache_keep_pages gauge\nveneer_cache_keep_pages %d\n"
		     "# HELP veneer_cache_listings Whether the kernel caches directory listings.\n"
		     "# TYPE veneer_cache_listings gauge\nveneer_cache_listings %d\n"
		     "# HELP veneer_cache_descriptors Descriptors of the real tree the daemon keeps open.\n"
		     "# TYPE veneer_cache_descriptors gauge\nveneer_cache_descriptors %zu\n",
		     c->entry_timeout, c->attr_timeout, c->negative_timeout, c->keep_cache,
		     c->cache_readdir, fds) < 0) {
		*ret_text = NULL;
		return -ENOMEM;
	}
	return 0;
}
