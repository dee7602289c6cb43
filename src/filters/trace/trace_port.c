/*
 * The trace filter's stream port "watch": each client is a live watcher.
 * Its request is the query's words ("json" or "text", then "ops=...",
 * "path=...", ...: trace_query_parse), each ending in a NUL or, without
 * any NUL, separated by spaces; its frames
 * are the records as lines, text ones after the columns' header.  The
 * ring of each watcher (trace_subs.c) bounds what waits for it: the
 * daemon pulls frames on the watcher's own connection thread, so no
 * request ever waits for a watcher.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "filters/trace/trace_internal.h"

#define QUERY_MAX_WORDS 16

struct watch {
	struct trace_sub *sub;
	bool header;		/* the text header is still to be sent */
};

/*
 * Splits MSG (LEN bytes) into words, in place in a copy: ending in NULs
 * (veneer trace, which keeps spaces inside a path=GLOB), or, in a request
 * without a NUL, separated by spaces (`veneer filter stream MNT trace/watch
 * json errors` from a shell).  -EINVAL for more than QUERY_MAX_WORDS.
 */
static int split_words(char *msg, size_t len, char **words, int *ret_n)
{
	char sep = memchr(msg, '\0', len) ? '\0' : ' ';
	int n = 0;
	size_t at = 0;
	while (at < len) {
		char *end = memchr(msg + at, sep, len - at);
		if (!end)
			end = msg + len;	/* the copy has a NUL past the end */
		*end = '\0';
		if (end > msg + at) {
			if (n == QUERY_MAX_WORDS)
				return -EINVAL;
			words[n++] = msg + at;
		}
		at = (size_t)(end - msg) + 1;
	}
	*ret_n = n;
	return 0;
}

static int watch_open(struct vn_filter *f, void *priv, const void *msg, size_t len,
		      void **ret_stream)
{
	char *words[QUERY_MAX_WORDS], why[256];
	int n;
	char *copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, msg, len);
	copy[len] = '\0';
	if (split_words(copy, len, words, &n) < 0) {
		free(copy);
		vn_port_error(f, "a trace query is at most %d words", QUERY_MAX_WORDS);
		return -EINVAL;
	}
	struct trace_query q;
	int r = trace_query_parse(n, words, &q, why, sizeof(why));
	free(copy);
	if (r < 0) {
		vn_port_error(f, "%s", why);
		return r;
	}
	struct watch *w = calloc(1, sizeof(*w));
	r = w ? trace_subscribe(&q, &w->sub) : -ENOMEM;
	if (r < 0) {
		vn_port_error(f, "cannot watch: %s",
			      r == -EBUSY ? "too many watchers" : strerror(-r));
		free(w);
	} else {
		w->header = !q.json;
		*ret_stream = w;
	}
	trace_query_clear(&q);
	return r;
}

static int watch_next(struct vn_filter *f, void *stream, int timeout_ms, void **ret_frame,
		      size_t *ret_len)
{
	struct watch *w = stream;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int r = 0;
	if (w->header) {
		w->header = false;
		r = textbuf_printf(&buf, &len, &cap, "%s", trace_text_header());
		timeout_ms = 0;	/* the header goes out at once, records or not */
	}
	if (r == 0)
		r = trace_sub_read(w->sub, &buf, &len, &cap, timeout_ms);
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret_frame = len ? buf : NULL;
	*ret_len = len;
	if (!len)
		free(buf);
	return 0;
}

static void watch_close(struct vn_filter *f, void *stream)
{
	struct watch *w = stream;
	trace_unsubscribe(w->sub);
	free(w);
}

static const struct vn_stream_ops watch_ops = {
	.open = watch_open,
	.next = watch_next,
	.close = watch_close,
};

int trace_port_open(struct vn_filter *f)
{
	return vn_port_open_stream(f, TRACE_WATCH_PORT, &watch_ops, NULL);
}
