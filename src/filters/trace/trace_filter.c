/*
 * The trace filter's callbacks.  Highest altitude: its pre sees what the
 * application asked, its post what it finally got, for every request that
 * reaches the daemon (the kernel's cache hits never do).
 *
 * Statistics are always kept (relaxed atomic counters: a few nanoseconds
 * per request).  A record with the path and arguments is built only while
 * a watcher or the trace file listens (trace_active).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/filter_args.h"
#include "common/textbuf.h"
#include "filters/trace/trace_internal.h"

/* Latency buckets: 4 per power of two of nanoseconds. */
#define SUB_BITS 2
#define NBUCKETS (64 << SUB_BITS)

struct op_stats {
	uint64_t count, errors, virt;
	uint64_t max_ns, sum_ns;
	uint64_t hist[NBUCKETS];
};

#define MAX_ERRNO 160

static struct op_stats stats[VN_OP_COUNT];
static uint64_t errno_counts[MAX_ERRNO];
static uint64_t bytes_read_real, bytes_read_virtual, bytes_written;

uint64_t trace_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static unsigned int bucket_of(uint64_t ns)
{
	if (ns < (1u << SUB_BITS))
		return (unsigned int)ns;
	unsigned int log = 63u - (unsigned int)__builtin_clzll(ns);
	unsigned int sub = (unsigned int)(ns >> (log - SUB_BITS)) & ((1u << SUB_BITS) - 1);
	return ((log - SUB_BITS + 1) << SUB_BITS) + sub;
}

/* The largest latency a bucket holds. */
static uint64_t bucket_top(unsigned int b)
{
	if (b < (1u << SUB_BITS))
		return b;
	unsigned int log = (b >> SUB_BITS) + SUB_BITS - 1;
	uint64_t sub = b & ((1u << SUB_BITS) - 1);
	return ((((1ULL << SUB_BITS) | sub) + 1) << (log - SUB_BITS)) - 1;
}

static void add(uint64_t *p, uint64_t v)
{
	__atomic_add_fetch(p, v, __ATOMIC_RELAXED);
}

/*
 * Bytes a READ returns.  A range of a real file is spliced after this
 * filter has run and the kernel asks for whole pages, so clamp it at the
 * file's size.
 */
static uint64_t read_bytes(const struct vn_op *op)
{
	const struct vn_read_data *d = &op->out.data;
	if (d->buf || d->fd < 0)
		return d->size;
	struct stat st;
	if (fstat(d->fd, &st) < 0 || st.st_size <= d->fd_offset)
		return 0;
	uint64_t left = (uint64_t)(st.st_size - d->fd_offset);
	return left < d->size ? left : d->size;
}

static void count(const struct vn_op *op, uint64_t ns, uint64_t bytes)
{
	struct op_stats *s = &stats[op->opcode];
	struct vn_node *t = trace_result_node(op);
	bool virt = t && vn_node_owner(t);
	add(&s->count, 1);
	add(&s->hist[bucket_of(ns)], 1);
	add(&s->sum_ns, ns);
	if (virt)
		add(&s->virt, 1);
	if (op->error) {
		add(&s->errors, 1);
		if (-op->error < MAX_ERRNO)
			add(&errno_counts[-op->error], 1);
	} else if (op->opcode == VN_OP_READ) {
		add(virt ? &bytes_read_virtual : &bytes_read_real, bytes);
	} else if (op->opcode == VN_OP_WRITE) {
		add(&bytes_written, op->out.count);
	}
	uint64_t max = __atomic_load_n(&s->max_ns, __ATOMIC_RELAXED);
	while (ns > max && !__atomic_compare_exchange_n(&s->max_ns, &max, ns, true,
							__ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/*
 * post_ctx carries either a record (while traced) or the start time
 * shifted left with the low bit set (records are aligned: bit 0 clear).
 */
static enum vn_verdict trace_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	uint64_t now = trace_now_ns();
	struct trace_record *r = NULL;
	if (__atomic_load_n(&trace_active, __ATOMIC_ACQUIRE) > 0)
		r = trace_record_capture(op);
	if (r) {
		r->start_ns = now;
		*post = r;
	} else {
		*post = (void *)(uintptr_t)((now << 1) | 1);
	}
	return VN_PASS_WITH_POST;
}

static void trace_post(struct vn_filter *f, struct vn_op *op, void *post)
{
	uintptr_t v = (uintptr_t)post;
	struct trace_record *r = (v & 1) ? NULL : post;
	uint64_t start = r ? r->start_ns : (uint64_t)(v >> 1);
	uint64_t ns = trace_now_ns() - start;
	uint64_t bytes = op->opcode == VN_OP_READ && op->error == 0 ? read_bytes(op) : 0;
	count(op, ns, bytes);
	if (!r)
		return;
	trace_record_finish(r, op, ns);
	if (op->opcode == VN_OP_READ && op->error == 0)
		r->bytes = (int64_t)bytes;
	trace_publish(r);
	trace_record_put(r);
}

#define H(op) { op, trace_pre, trace_post }
static const struct vn_filter_handler handlers[] = {
	H(VN_OP_LOOKUP), H(VN_OP_GETATTR), H(VN_OP_SETATTR), H(VN_OP_READLINK), H(VN_OP_MKNOD),
	H(VN_OP_MKDIR), H(VN_OP_UNLINK), H(VN_OP_RMDIR), H(VN_OP_SYMLINK), H(VN_OP_RENAME),
	H(VN_OP_LINK), H(VN_OP_OPEN), H(VN_OP_CREATE), H(VN_OP_READ), H(VN_OP_WRITE),
	H(VN_OP_FLUSH), H(VN_OP_RELEASE), H(VN_OP_FSYNC), H(VN_OP_OPENDIR), H(VN_OP_READDIR),
	H(VN_OP_RELEASEDIR), H(VN_OP_FSYNCDIR), H(VN_OP_STATFS), H(VN_OP_SETXATTR),
	H(VN_OP_GETXATTR), H(VN_OP_LISTXATTR), H(VN_OP_REMOVEXATTR), H(VN_OP_ACCESS),
	H(VN_OP_FALLOCATE), H(VN_OP_COPY_FILE_RANGE), H(VN_OP_LSEEK),
	{ VN_OP_NONE, NULL, NULL },
};
#undef H

struct vn_filter *trace_self;

static int take_arg(const char *key, const char *value, void *arg)
{
	char why[PATH_MAX + 128];
	int r = -EINVAL;
	if (!strcmp(key, "file") && value && *value)
		r = trace_file_start(value, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "trace filter: unknown argument '%s' (want file=PATH)",
			 key);
	if (r < 0)
		vn_attach_error(arg, "%s", why);
	return r;
}

static int trace_attach(struct vn_filter *f, const char *args)
{
	trace_self = f;
	int r = filter_args_each(args, take_arg, f);
	if (r == 0)
		r = trace_port_open(f);	/* `veneer trace` watches through it */
	if (r < 0)
		trace_file_stop();
	return r;
}

const struct vn_filter_ops trace_filter_ops = {
	.api_version = VN_FILTER_API_VERSION,
	.size = sizeof(struct vn_filter_ops),
	.name = "trace",
	.altitude = INT_MAX,
	/*
	 * Opens the kernel skips are not traced, nor the data of files it
	 * serves itself; while someone listens, new opens bring their data to
	 * the daemon (trace_subs.c; docs/trace.md).
	 */
	.flags = VN_FILTER_OPENS_SKIPPABLE | VN_FILTER_DATA_SKIPPABLE,
	.attach = trace_attach,
	.handlers = handlers,
};

/* ---- status ---- */

static uint64_t percentile(const struct op_stats *s, uint64_t total, unsigned int pct)
{
	uint64_t want = (total * pct + 99) / 100, seen = 0;
	for (unsigned int b = 0; b < NBUCKETS; b++) {
		seen += __atomic_load_n(&s->hist[b], __ATOMIC_RELAXED);
		if (seen >= want && seen > 0)
			return bucket_top(b);
	}
	return 0;
}

static int status_ops(bool json, char **b, size_t *l, size_t *c)
{
	int e = json ? textbuf_printf(b, l, c, "\"operations\":{")
		     : textbuf_printf(b, l, c, "%-16s %10s %8s %8s %10s %10s %10s\n", "OP", "COUNT",
					"ERRORS", "VIRTUAL", "P50(us)", "P99(us)", "MAX(us)");
	bool first = true;
	for (int i = VN_OP_NONE + 1; i < VN_OP_COUNT && e == 0; i++) {
		const struct op_stats *s = &stats[i];
		uint64_t n = __atomic_load_n(&s->count, __ATOMIC_RELAXED);
		if (!n)
			continue;
		uint64_t errs = __atomic_load_n(&s->errors, __ATOMIC_RELAXED);
		uint64_t virt = __atomic_load_n(&s->virt, __ATOMIC_RELAXED);
		/* a bucket's top can lie above the largest value seen */
		uint64_t max_ns = __atomic_load_n(&s->max_ns, __ATOMIC_RELAXED);
		uint64_t p50_ns = percentile(s, n, 50), p99_ns = percentile(s, n, 99);
		double p50 = (double)(p50_ns < max_ns ? p50_ns : max_ns) / 1000.0;
		double p99 = (double)(p99_ns < max_ns ? p99_ns : max_ns) / 1000.0;
		double max = (double)max_ns / 1000.0;
		const char *name = vn_opcode_name((enum vn_opcode)i);
		if (json)
			e = textbuf_printf(b, l, c, "%s\"%s\":{\"count\":%llu,\"errors\":%llu,"
					     "\"real\":%llu,\"virtual\":%llu,\"p50_us\":%.1f,"
					     "\"p99_us\":%.1f,\"max_us\":%.1f}", first ? "" : ",",
					     name, (unsigned long long)n, (unsigned long long)errs,
					     (unsigned long long)(n - virt), (unsigned long long)virt,
					     p50, p99, max);
		else
			e = textbuf_printf(b, l, c, "%-16s %10llu %8llu %8llu %10.1f %10.1f %10.1f\n",
					     name, (unsigned long long)n, (unsigned long long)errs,
					     (unsigned long long)virt, p50, p99, max);
		first = false;
	}
	return e ?: (json ? textbuf_printf(b, l, c, "}") : 0);
}

static int status_errors(bool json, char **b, size_t *l, size_t *c)
{
	int e = json ? textbuf_printf(b, l, c, ",\"errors\":{") : textbuf_printf(b, l, c, "errors:");
	bool first = true;
	for (int i = 1; i < MAX_ERRNO && e == 0; i++) {
		uint64_t n = __atomic_load_n(&errno_counts[i], __ATOMIC_RELAXED);
		if (!n)
			continue;
		const char *name = strerrorname_np(i);
		e = json ? textbuf_printf(b, l, c, "%s\"%s\":%llu", first ? "" : ",",
					    name ? name : "E?", (unsigned long long)n)
			 : textbuf_printf(b, l, c, " %s %llu", name ? name : "E?",
					    (unsigned long long)n);
		first = false;
	}
	if (e == 0 && !json && first)
		e = textbuf_printf(b, l, c, " none");
	return e ?: textbuf_printf(b, l, c, json ? "}" : "\n");
}

int trace_status(bool json, char **ret_text)
{
	char *b = NULL;
	size_t l = 0, c = 0;
	uint64_t rr = __atomic_load_n(&bytes_read_real, __ATOMIC_RELAXED);
	uint64_t rv = __atomic_load_n(&bytes_read_virtual, __ATOMIC_RELAXED);
	uint64_t w = __atomic_load_n(&bytes_written, __ATOMIC_RELAXED);
	int e = json ? 0 : textbuf_printf(&b, &l, &c, "requests that reached the daemon (cache "
					    "hits in the kernel are not counted):\n");
	e = e ?: status_ops(json, &b, &l, &c);
	e = e ?: status_errors(json, &b, &l, &c);
	e = e ?: (json ? textbuf_printf(&b, &l, &c, ",\"bytes\":{\"read_real\":%llu,"
					  "\"read_virtual\":%llu,\"written\":%llu}",
					  (unsigned long long)rr, (unsigned long long)rv,
					  (unsigned long long)w)
		       : textbuf_printf(&b, &l, &c, "bytes read: %llu real, %llu virtual; "
					  "written: %llu\n", (unsigned long long)rr,
					  (unsigned long long)rv, (unsigned long long)w));
	if (e) {
		free(b);
		return e;
	}
	*ret_text = b;
	return 0;
}

/* ---- Prometheus ---- */

/*
 * Histogram bounds: powers of four nanoseconds, 1.024 us to 17.2 s.  Each
 * is a boundary of the daemon's buckets, so the counts are exact: the
 * bucket "le" 2^k ns counts the requests that took less than 2^k ns.
 */
#define PROM_LOW_BIT 10
#define PROM_HIGH_BIT 34

static int prom_histogram(const struct op_stats *s, const char *name, char **b, size_t *l,
			  size_t *c)
{
	uint64_t seen = 0;
	unsigned int next = 0;
	int e = 0;
	for (unsigned int k = PROM_LOW_BIT; k <= PROM_HIGH_BIT && e == 0; k += 2) {
		for (unsigned int end = bucket_of(1ULL << k); next < end; next++)
			seen += __atomic_load_n(&s->hist[next], __ATOMIC_RELAXED);
		e = textbuf_printf(b, l, c, "veneer_operation_latency_seconds_bucket{op=\"%s\","
				   "le=\"%.9g\"} %llu\n", name, (double)(1ULL << k) / 1e9,
				   (unsigned long long)seen);
	}
	for (; next < NBUCKETS; next++)
		seen += __atomic_load_n(&s->hist[next], __ATOMIC_RELAXED);
	uint64_t sum = __atomic_load_n(&s->sum_ns, __ATOMIC_RELAXED);
	return e ?: textbuf_printf(b, l, c, "veneer_operation_latency_seconds_bucket{op=\"%s\","
				   "le=\"+Inf\"} %llu\n"
				   "veneer_operation_latency_seconds_sum{op=\"%s\"} %.9f\n"
				   "veneer_operation_latency_seconds_count{op=\"%s\"} %llu\n",
				   name, (unsigned long long)seen, name, (double)sum / 1e9, name,
				   (unsigned long long)seen);
}

/* One counter per operation, read at OFFSET in struct op_stats. */
static int prom_op_counter(const char *metric, const char *help, size_t offset, char **b,
			   size_t *l, size_t *c)
{
	int e = textbuf_prom_family(b, l, c, metric, "counter", help);
	for (int i = VN_OP_NONE + 1; i < VN_OP_COUNT && e == 0; i++) {
		const uint64_t *v = (const uint64_t *)((const char *)&stats[i] + offset);
		e = textbuf_printf(b, l, c, "%s{op=\"%s\"} %llu\n", metric,
				   vn_opcode_name((enum vn_opcode)i),
				   (unsigned long long)__atomic_load_n(v, __ATOMIC_RELAXED));
	}
	return e;
}

static int prom_errors(char **b, size_t *l, size_t *c)
{
	int e = textbuf_prom_family(b, l, c, "veneer_errors_total", "counter",
				    "Requests answered with an error, by errno name.");
	for (int i = 1; i < MAX_ERRNO && e == 0; i++) {
		uint64_t n = __atomic_load_n(&errno_counts[i], __ATOMIC_RELAXED);
		const char *name = strerrorname_np(i);
		if (n && name)
			e = textbuf_printf(b, l, c, "veneer_errors_total{errno=\"%s\"} %llu\n", name,
					   (unsigned long long)n);
	}
	return e;
}

static int prom_bytes(char **b, size_t *l, size_t *c)
{
	return textbuf_prom_family(b, l, c, "veneer_read_bytes_total", "counter",
				   "Bytes returned by reads, from real or virtual (layer) files.") ?:
	       textbuf_printf(b, l, c, "veneer_read_bytes_total{source=\"real\"} %llu\n"
			      "veneer_read_bytes_total{source=\"virtual\"} %llu\n",
			      (unsigned long long)__atomic_load_n(&bytes_read_real, __ATOMIC_RELAXED),
			      (unsigned long long)__atomic_load_n(&bytes_read_virtual,
								  __ATOMIC_RELAXED)) ?:
	       textbuf_prom_family(b, l, c, "veneer_written_bytes_total", "counter",
				   "Bytes written.") ?:
	       textbuf_printf(b, l, c, "veneer_written_bytes_total %llu\n",
			      (unsigned long long)__atomic_load_n(&bytes_written, __ATOMIC_RELAXED));
}

int trace_metrics(char **ret_text)
{
	char *b = NULL;
	size_t l = 0, c = 0;
	int e = prom_op_counter("veneer_operations_total", "Requests that reached the daemon.",
				offsetof(struct op_stats, count), &b, &l, &c) ?:
		prom_op_counter("veneer_operation_errors_total", "Requests answered with an error.",
				offsetof(struct op_stats, errors), &b, &l, &c) ?:
		prom_op_counter("veneer_operations_virtual_total",
				"Requests on virtual (layer) objects.",
				offsetof(struct op_stats, virt), &b, &l, &c) ?:
		textbuf_prom_family(&b, &l, &c, "veneer_operation_latency_seconds", "histogram",
				    "Time from the daemon receiving a request to its answer.");
	for (int i = VN_OP_NONE + 1; i < VN_OP_COUNT && e == 0; i++)
		e = prom_histogram(&stats[i], vn_opcode_name((enum vn_opcode)i), &b, &l, &c);
	e = e ?: prom_errors(&b, &l, &c);
	e = e ?: prom_bytes(&b, &l, &c);
	if (e) {
		free(b);
		return e;
	}
	*ret_text = b;
	return 0;
}
