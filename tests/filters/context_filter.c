/*
 * Test filter: counts its per-node and per-file contexts.  Every node the
 * kernel looks up and every file it opens gets one; the cleanup callbacks
 * count them back.  The counts are rewritten to the file named in ARGS after
 * every change, so a test can watch them while the mount lives.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <veneer/filter.h>

struct ctx {
	int used;
};

static atomic_long node_allocs, node_frees, file_allocs, file_frees;
static char *report_path;

static void write_report(void);

static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

/* Serialized: two threads writing the one temporary file would interleave. */
static void report(void)
{
	pthread_mutex_lock(&report_lock);
	if (report_path)
		write_report();
	pthread_mutex_unlock(&report_lock);
}

static void write_report(void)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", report_path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "node_allocs=%ld node_frees=%ld file_allocs=%ld file_frees=%ld\n",
		atomic_load(&node_allocs), atomic_load(&node_frees), atomic_load(&file_allocs),
		atomic_load(&file_frees));
	fclose(f);
	rename(tmp, report_path);
}

static void lookup_post(struct vn_filter *f, struct vn_op *op, void *post)
{
	if (op->error)
		return;
	struct ctx *c = vn_node_context(f, op->out.entry);
	if (c && !__atomic_exchange_n(&c->used, 1, __ATOMIC_ACQ_REL)) {
		atomic_fetch_add(&node_allocs, 1);
		report();
	}
}

static void open_post(struct vn_filter *f, struct vn_op *op, void *post)
{
	if (op->error)
		return;
	struct ctx *c = vn_file_context(f, op->file);
	if (c && !c->used) {
		c->used = 1;
		atomic_fetch_add(&file_allocs, 1);
		report();
	}
}

static void node_cleanup(struct vn_filter *f, void *ctx)
{
	if (((struct ctx *)ctx)->used)
		atomic_fetch_add(&node_frees, 1);
	report();
}

static void file_cleanup(struct vn_filter *f, void *ctx)
{
	if (((struct ctx *)ctx)->used)
		atomic_fetch_add(&file_frees, 1);
	report();
}

static int attach(struct vn_filter *f, const char *args)
{
	if (!args || !*args)
		return -22;
	report_path = strdup(args);
	return report_path ? 0 : -12;
}

static void detach(struct vn_filter *f)
{
	report();
	free(report_path);
	report_path = NULL;
}

static const struct vn_filter_handler handlers[] = {
	{ VN_OP_LOOKUP, NULL, lookup_post },
	{ VN_OP_OPEN, NULL, open_post },
	{ VN_OP_CREATE, NULL, open_post },
	{ VN_OP_NONE, NULL, NULL },
};

const struct vn_filter_ops vn_filter_entry = {
	.api_version = VN_FILTER_API_VERSION,
	.size = sizeof(struct vn_filter_ops),
	.name = "test-contexts",
	.altitude = 400,
	.node_ctx_size = sizeof(struct ctx),
	.file_ctx_size = sizeof(struct ctx),
	.node_ctx_cleanup = node_cleanup,
	.file_ctx_cleanup = file_cleanup,
	.attach = attach,
	.detach = detach,
	.handlers = handlers,
};
