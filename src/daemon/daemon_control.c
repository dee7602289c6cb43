/* The control socket's verbs, dispatched to the filters that serve them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/textbuf.h"
#include "core/filter_list.h"
#include "frontend/cache_report.h"
#include "daemon/builtin_filters.h"
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

/* A report built up: text, JSON members or Prometheus samples. */
struct report {
	char *buf;
	size_t len, cap;
	bool json;
};

/* Appends one part (R: what made it; TEXT: freed here); a JSON part's members after a comma. */
static int put_part(struct report *t, int r, char *text)
{
	if (r == 0)
		r = textbuf_printf(&t->buf, &t->len, &t->cap, "%s%s", t->json ? "," : "",
				   text ? text : "");
	free(text);
	return r;
}

/* The built-ins' parts on one side of the daemon's own: their status, or with METRICS their metrics. */
static int put_builtins(struct report *t, bool after, bool metrics)
{
	size_t n;
	const struct builtin_report *b = builtin_filters_reports(after, &n);
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		char *text = NULL;
		r = metrics ? b[i].metrics(&text) : b[i].status(t->json, &text);
		r = put_part(t, r, text);
	}
	return r;
}

/* The report, or -errno with it freed. */
static int report_finish(struct report *t, int r, char **ret_text)
{
	*ret_text = NULL;
	if (r == 0 && !t->buf && !(t->buf = strdup("")))
		r = -ENOMEM;
	if (r < 0)
		free(t->buf);
	else
		*ret_text = t->buf;
	return r;
}

/* status json|text: the layers, the open mode, the caches, then the operation statistics. */
static int status(bool json, char **ret_text)
{
	status_part *const own[] = { passthrough_status, cache_status };
	struct report t = { .json = json };
	int r = json ? textbuf_printf(&t.buf, &t.len, &t.cap, "{\"schema\":%d", STATUS_SCHEMA) : 0;
	if (r == 0)
		r = put_builtins(&t, false, false);
	for (size_t i = 0; i < 2 && r == 0; i++) {
		char *text = NULL;
		r = own[i](json, &text);
		r = put_part(&t, r, text);
	}
	if (r == 0 && !json)
		r = textbuf_printf(&t.buf, &t.len, &t.cap, "\n");
	if (r == 0)
		r = put_builtins(&t, true, false);
	if (r == 0 && json)
		r = textbuf_printf(&t.buf, &t.len, &t.cap, "}\n");
	return report_finish(&t, r, ret_text);
}

/* status prometheus: the same figures in the Prometheus text exposition format. */
static int metrics(char **ret_text)
{
	metrics_part *const own[] = { fm_metrics, passthrough_metrics, cache_metrics };
	struct report t = { .json = false };
	int r = textbuf_printf(&t.buf, &t.len, &t.cap,
			       "# HELP veneer_status_schema Version of these metrics.\n"
			       "# TYPE veneer_status_schema gauge\nveneer_status_schema %d\n",
			       STATUS_SCHEMA);
	if (r == 0)
		r = put_builtins(&t, false, true);
	for (size_t i = 0; i < 3 && r == 0; i++) {
		char *text = NULL;
		r = own[i](&text);
		r = put_part(&t, r, text);
	}
	if (r == 0)
		r = put_builtins(&t, true, true);
	return report_finish(&t, r, ret_text);
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

/* ---- streams: port clients and stream ports' clients, one per connection ---- */

struct stream {
	int (*next)(void *ctx, char **buf, size_t *len, size_t *cap, int timeout_ms);
	void (*close)(void *ctx);
	void *ctx;
};

static bool is_stream(void *arg, const char *verb)
{
	return !strcmp(verb, "stream") || !strcmp(verb, "listen");
}

static int open_stream(void *arg, pid_t peer, const char *verb, int nargs, char **args,
		       void **ret_ctx, char **ret_text, char *err, size_t errlen)
{
	struct stream *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	int r;
	*ret_text = NULL;
	if (!strcmp(verb, "stream")) {
		st->next = filter_control_stream_next;
		st->close = filter_control_stream_close;
		r = filter_control_stream(nargs, args, &st->ctx, err, errlen);
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
