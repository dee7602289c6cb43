/* The control socket's verbs, dispatched to the filters that serve them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/trace/trace.h"
#include "filters/virtualize/virtualize.h"
#include "frontend/daemon_control.h"
#include "frontend/filter_control.h"
#include "frontend/passthrough.h"

/* status json|text: the layers, the open mode, then the operation statistics. */
static int status(bool json, char **ret_text)
{
	char *layers = NULL, *opens = NULL, *ops = NULL;
	int r = vz_status(json, &layers);
	if (r == 0)
		r = passthrough_status(json, &opens);
	if (r == 0)
		r = trace_status(json, &ops);
	if (r == 0) {
		int n = json ? asprintf(ret_text, "{%s,%s,%s}\n", layers, opens, ops)
			     : asprintf(ret_text, "%s%s\n%s", layers, opens, ops);
		if (n < 0) {
			*ret_text = NULL;
			r = -ENOMEM;
		}
	}
	free(layers);
	free(opens);
	free(ops);
	return r;
}

static int call(void *arg, const char *verb, int nargs, char **args, char **ret_text, char *err,
		size_t errlen)
{
	*ret_text = NULL;
	if (!strcmp(verb, "status") && nargs == 1)
		return status(!strcmp(args[0], "json"), ret_text);
	if (filter_control_serves(verb))
		return filter_control_call(verb, nargs, args, ret_text, err, errlen);
	return vz_control_call(arg, verb, nargs, args, ret_text, err, errlen);
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
