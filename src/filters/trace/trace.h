/*
 * The trace filter: at the highest altitude it sees every request that
 * reaches the daemon as the application asked it and as it was finally
 * answered.  It keeps per-operation statistics always, and formats one
 * record per operation for the trace file and the live watchers only
 * while there is one.
 *
 * The functions below run on the control thread, a watcher's thread or
 * the main thread, never in a request, and may block.
 */
#ifndef VENEER_TRACE_H
#define VENEER_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <veneer/filter.h>

extern const struct vn_filter_ops trace_filter_ops;

/* Which records a watcher wants, and how it wants them. */
struct trace_query {
	uint64_t ops;			/* bit (1 << enum vn_opcode) per operation; 0: all */
	char *path_glob;		/* fnmatch(3) pattern on the path; NULL: all */
	pid_t pid;			/* 0: all */
	bool errors_only;		/* only results that are errors */
	uint64_t slow_us;		/* only operations that took at least this; 0: all */
	bool json;			/* JSON lines; else aligned text columns */
};

/*
 * Parses the request arguments of the "trace" verb:
 *   "json" | "text", then any of "ops=NAME,NAME", "path=GLOB", "pid=N",
 *   "errors", "slow=USEC".
 * Returns 0, or -EINVAL with a one-line reason in err.
 */
int trace_query_parse(int nargs, char **args, struct trace_query *q, char *err, size_t errlen);
void trace_query_clear(struct trace_query *q);

/* The text columns' header line, for watchers that asked for text. */
const char *trace_text_header(void);

/*
 * A live watcher.  Records are queued for it in a bounded ring; when it
 * falls behind, new records are dropped and counted, the filesystem never
 * waits for it.
 */
struct trace_sub;
int trace_subscribe(const struct trace_query *q, struct trace_sub **ret);
/*
 * Waits up to timeout_ms for records and appends them, formatted (one line
 * each, ending in '\n'), to *buf (malloc'd, grown as needed; *len bytes
 * used).  After drops it first appends a notice line ("# N records
 * dropped", or {"dropped":N} in JSON).  Returns the number of records
 * appended (0 on timeout) or -errno.
 */
int trace_sub_read(struct trace_sub *s, char **buf, size_t *len, size_t *cap, int timeout_ms);
uint64_t trace_sub_dropped(const struct trace_sub *s);
void trace_unsubscribe(struct trace_sub *s);

/*
 * MOUNTPOINT (absolute) and LOWER_FD (borrowed, an O_PATH descriptor of
 * LOWER), before the filter attaches: a trace file under the mount point
 * is created through the lower, never through the mount.
 */
void trace_mount_init(const char *mountpoint, int lower_fd);
/* Flushes and closes the trace file its "file=PATH" argument started (at unmount). */
void trace_file_stop(void);

/*
 * Registered with ARGS lines (common/filter_args.h): "file=PATH" writes
 * JSON lines to the absolute PATH from then on.
 */
/*
 * One HTTP request of a remote layer (an http_fetch_observer): recorded
 * as a "fetch" record while the trace is active (docs/trace.md).  Runs on
 * the fetching thread, outside any request; does not block.
 */
void trace_fetch(const char *url, uint64_t offset, uint64_t size, uint64_t bytes,
		 uint64_t latency_ns, int error);

/* Statistics: per-operation counts, errors by errno, latency, bytes. */
int trace_status(bool json, char **ret_text);
/* The same in the Prometheus text format, with latency histograms (docs/status.md). */
int trace_metrics(char **ret_text);

#endif
