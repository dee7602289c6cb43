/* The control socket's verbs, dispatched to the filters that serve them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/filter_list.h"
#include "filters/trace/trace.h"
#include "filters/virtualize/virtualize.h"
#include "frontend/cache_report.h"
#include "daemon/daemon_control.h"
#include "daemon/filter_control.h"
#include "frontend/passthrough.h"

/*
 * The version of the JSON document and the metric set (docs/status.md):
 * raised when a member or metric changes meaning or goes away.
 */
#define STATUS_SCHEMA 1

typedef int status_part(bool json, char **ret_text);
typedef int metrics_part(char **ret_text);

/* status json|text: the layers, the open mode, the caches, then the operation statistics. */
static int status(bool json, char **ret_text)
{
	status_part *const parts[] = { vz_status, passthrough_status, cache_status, trace_status };
	char *text[4] = { NULL };
	int r = 0;
	for (size_t i = 0; i < 4 && r == 0; i++)
		r = parts[i](json, &text[i]);
	if (r == 0) {
		int n = json ? asprintf(ret_text, "{\"schema\":%d,%s,%s,%s,%s}\n", STATUS_SCHEMA,
					text[0], text[1], text[2], text[3])
			     : asprintf(ret_text, "%s%s%s\n%s", text[0], text[1], text[2], text[3]);
		if (n < 0) {
			*ret_text = NULL;
			r = -ENOMEM;
		}
	}
	for (size_t i = 0; i < 4; i++)
		free(text[i]);
	return r;
}

/* status prometheus: the same figures in the Prometheus text exposition format. */
static int metrics(char **ret_text)
{
	metrics_part *const parts[] = { vz_metrics, fm_metrics, passthrough_metrics,
					cache_metrics, trace_metrics };
	char *text[5] = { NULL };
	int r = 0;
	for (size_t i = 0; i < 5 && r == 0; i++)
		r = parts[i](&text[i]);
	if (r == 0 && asprintf(ret_text, "# HELP veneer_status_schema Version of these metrics.\n"
			       "# TYPE veneer_status_schema gauge\nveneer_status_schema %d\n"
			       "%s%s%s%s%s", STATUS_SCHEMA, text[0], text[1], text[2], text[3],
			       text[4]) < 0) {
		*ret_text = NULL;
		r = -ENOMEM;
	}
	for (size_t i = 0; i < 5; i++)
		free(text[i]);
	return r;
}

static int call(void *arg, const char *verb, int nargs, char **args, char **ret_text, char *err,
		size_t errlen)
{
	*ret_text = NULL;
	if (!strcmp(verb, "status") && nargs == 1)
		return !strcmp(args[0], "prometheus") ? metrics(ret_text)
						      : status(!strcmp(args[0], "json"), ret_text);
	if (filter_control_serves(verb))
		return filter_control_call(verb, nargs, args, ret_text, err, errlen);
	snprintf(err, errlen, "unknown request '%s' with %d argument%s", verb, nargs,
		 nargs == 1 ? "" : "s");
	return -EINVAL;
}

/* ---- streams: trace watchers and port clients, one per connection ---- */

struct stream {
	int (*next)(void *ctx, char **buf, size_t *len, size_t *cap, int timeout_ms);
	void (*close)(void *ctx);
	void *ctx;
};

static bool is_stream(void *arg, const char *verb)
{
	return !strcmp(verb, "trace") || !strcmp(verb, "listen");
}

static int open_trace(int nargs, char **args, void **ret_ctx, char **ret_text, char *err,
		      size_t errlen)
{
	if (!trace_loaded()) {
		snprintf(err, errlen, "this mount runs without the trace filter (--no-trace)");
		return -EOPNOTSUPP;
	}
	struct trace_query q;
	int r = trace_query_parse(nargs, args, &q, err, errlen);
	if (r < 0)
		return r;
	struct trace_sub *sub;
	r = trace_subscribe(&q, &sub);
	if (r < 0) {
		snprintf(err, errlen, "cannot watch: %s", r == -EBUSY ? "too many watchers"
								  : strerror(-r));
	} else {
		*ret_ctx = sub;
		*ret_text = q.json ? NULL : strdup(trace_text_header());
	}
	trace_query_clear(&q);
	return r;
}

static int next_trace(void *ctx, char **buf, size_t *len, size_t *cap, int timeout_ms)
{
	return trace_sub_read(ctx, buf, len, cap, timeout_ms);
}

static void close_trace(void *ctx)
{
	trace_unsubscribe(ctx);
}

static int open_stream(void *arg, pid_t peer, const char *verb, int nargs, char **args,
		       void **ret_ctx, char **ret_text, char *err, size_t errlen)
{
	struct stream *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	int r;
	if (!strcmp(verb, "trace")) {
		st->next = next_trace;
		st->close = close_trace;
		r = open_trace(nargs, args, &st->ctx, ret_text, err, errlen);
	} else {
		st->next = filter_control_listen_next;
		st->close = filter_control_listen_close;
		r = filter_control_listen(peer, nargs, args, &st->ctx, err, errlen);
	}
	if (r < 0)
		free(st);
	else
		*ret_ctx = st;
	return r;
}

static int next_stream(void *ctx, char **buf, size_t *len, size_t *cap, int timeout_ms)
{
	struct stream *st = ctx;
	return st->next(st->ctx, buf, len, cap, timeout_ms);
}

static void close_stream(void *ctx)
{
	struct stream *st = ctx;
	st->close(st->ctx);
	free(st);
}

static const struct control_stream_ops stream_ops = {
	.is_stream = is_stream,
	.open = open_stream,
	.next = next_stream,
	.close = close_stream,
};

const struct control_handler daemon_control_handler = {
	.call = call,
	.arg = NULL,
	.stream = &stream_ops,
};
