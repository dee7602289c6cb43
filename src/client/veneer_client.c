/*
 * libveneer-client: a port message over the control socket's "port" verb
 * (src/daemon/filter_control.c), framed as hex (control/port_frame.h);
 * a port's client over the streaming "listen" verb, each question a line
 * "ID HEX", each answer an "answer" request of its own; a stream port's
 * client over the streaming "stream" verb, each frame a line "HEX".
 * Only the vn_client_* names leave the library (client.map).
 */
#include <veneer/client.h>
#include <veneer/filter.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control.h"
#include "control/port_frame.h"

_Static_assert(VN_CLIENT_MAX_MESSAGE == VN_PORT_MAX_MESSAGE, "one bound for both ends");
_Static_assert(VN_CLIENT_MAX_FRAME == VN_PORT_MAX_FRAME, "one bound for both ends");

int vn_client_send(const char *mountpoint, const char *filter, const char *port,
		   const void *msg, size_t len, void **ret_reply, size_t *ret_len, char *err,
		   size_t errlen)
{
	char *field;
	int r = port_frame_encode(msg, len, &field);
	if (r < 0) {
		if (r == -EMSGSIZE)
			snprintf(err, errlen, "message of %zu bytes is over the limit of %d", len,
				 VN_CLIENT_MAX_MESSAGE);
		else
			snprintf(err, errlen, "out of memory");
		return r;
	}
	const char *args[] = { filter, port ? port : "", field };
	char *text = NULL;
	err[0] = '\0';
	r = control_call(mountpoint, "port", 3, args, &text, err, errlen);
	free(field);
	if (r < 0)
		return r;
	r = port_frame_decode(text, ret_reply, ret_len);
	free(text);
	if (r < 0)
		snprintf(err, errlen, "the daemon sent a reply that is not a port frame");
	return r < 0 ? -EPROTO : 0;
}

struct listener {
	const char *mountpoint, *filter, *port;
	vn_client_answer_fn *answer;
	void *arg;
	char *line;		/* a question not yet complete */
	size_t len, cap;
	char *err;
	size_t errlen;
};

/* Answers the question in LINE ("ID HEX"); 0, or -errno to end the stream. */
static int serve_line(struct listener *l, char *line)
{
	char *hex = strchr(line, ' ');
	if (!hex) {
		snprintf(l->err, l->errlen, "the daemon sent a question without a number");
		return -EPROTO;
	}
	*hex++ = '\0';
	void *msg, *reply = NULL;
	size_t len, reply_len = 0;
	if (port_frame_decode(hex, &msg, &len) < 0) {
		snprintf(l->err, l->errlen, "the daemon sent a question that is not a port frame");
		return -EPROTO;
	}
	int r = l->answer(l->arg, msg, len, &reply, &reply_len);
	free(msg);
	if (r < 0) {
		free(reply);
		return 0;	/* unanswered: the filter's default applies */
	}
	char *field;
	r = port_frame_encode(reply, reply_len, &field);
	free(reply);
	if (r < 0) {
		snprintf(l->err, l->errlen, "an answer of %zu bytes is over the limit of %d",
			 reply_len, VN_CLIENT_MAX_MESSAGE);
		return r;
	}
	const char *args[] = { l->filter, l->port, line, field };
	char *text = NULL, err[256];
	/* a question that timed out meanwhile is no error of ours */
	if (control_call(l->mountpoint, "answer", 4, args, &text, err, sizeof(err)) == 0)
		free(text);
	free(field);
	return 0;
}

static int on_text(void *arg, const char *text, size_t len)
{
	struct listener *l = arg;
	for (size_t i = 0; i < len; i++) {
		if (l->len + 1 >= l->cap) {
			size_t cap = l->cap ? 2 * l->cap : 256;
			char *grown = realloc(l->line, cap);
			if (!grown) {
				snprintf(l->err, l->errlen, "out of memory");
				return -ENOMEM;
			}
			l->line = grown;
			l->cap = cap;
		}
		if (text[i] != '\n') {
			l->line[l->len++] = text[i];
			continue;
		}
		l->line[l->len] = '\0';
		l->len = 0;
		int r = serve_line(l, l->line);
		if (r < 0)
			return r;
	}
	return 0;
}

int vn_client_listen(const char *mountpoint, const char *filter, const char *port,
		     vn_client_answer_fn *answer, void *arg, volatile int *stop, char *err,
		     size_t errlen)
{
	struct listener l = {
		.mountpoint = mountpoint, .filter = filter, .port = port ? port : "",
		.answer = answer, .arg = arg, .err = err, .errlen = errlen,
	};
	const char *args[] = { filter, l.port };
	err[0] = '\0';
	int r = control_stream(mountpoint, "listen", 2, args, on_text, &l, stop, err, errlen);
	free(l.line);
	return r;
}

/* A stream's frames as they come: hex lines, cut anywhere by the transport. */
struct receiver {
	vn_client_frame_fn *on_frame;
	void *arg;
	char *line;		/* the digits of a frame not yet complete */
	size_t len, cap;
	char *err;
	size_t errlen;
};

/* Room for N more digits of the current line; the bound is a whole frame's. */
static int line_room(struct receiver *rc, size_t n)
{
	if (rc->len + n <= rc->cap)
		return 0;
	if (rc->len + n > 2 * (size_t)VN_CLIENT_MAX_FRAME) {
		snprintf(rc->err, rc->errlen, "the daemon sent a frame over %d bytes",
			 VN_CLIENT_MAX_FRAME);
		return -EPROTO;
	}
	size_t cap = rc->cap ? rc->cap : 4096;
	while (cap < rc->len + n)
		cap *= 2;
	char *grown = realloc(rc->line, cap);
	if (!grown) {
		snprintf(rc->err, rc->errlen, "out of memory");
		return -ENOMEM;
	}
	rc->line = grown;
	rc->cap = cap;
	return 0;
}

/* The frame whose N digits are at DIGITS: decoded and handed on. */
static int deliver(struct receiver *rc, const char *digits, size_t n)
{
	void *frame;
	size_t len;
	if (port_frame_decode_max(digits, n, VN_CLIENT_MAX_FRAME, &frame, &len) < 0) {
		snprintf(rc->err, rc->errlen, "the daemon sent a frame that is not hex");
		return -EPROTO;
	}
	int r = rc->on_frame(rc->arg, frame, len);
	free(frame);
	return r;
}

static int on_frame_text(void *arg, const char *text, size_t len)
{
	struct receiver *rc = arg;
	while (len > 0) {
		const char *nl = memchr(text, '\n', len);
		size_t n = nl ? (size_t)(nl - text) : len;
		int r;
		if (nl && rc->len == 0) {
			r = deliver(rc, text, n);	/* a whole line in the chunk: no copy */
		} else {
			r = line_room(rc, n);
			if (r == 0) {
				memcpy(rc->line + rc->len, text, n);
				rc->len += n;
			}
			if (r == 0 && nl) {
				r = deliver(rc, rc->line, rc->len);
				rc->len = 0;
			}
		}
		if (r != 0)
			return r;
		text += n + (nl != NULL);
		len -= n + (nl != NULL);
	}
	return 0;
}

int vn_client_stream(const char *mountpoint, const char *filter, const char *port,
		     const void *msg, size_t len, vn_client_frame_fn *on_frame, void *arg,
		     volatile int *stop, char *err, size_t errlen)
{
	char *field;
	err[0] = '\0';
	int r = port_frame_encode(msg, len, &field);
	if (r < 0) {
		if (r == -EMSGSIZE)
			snprintf(err, errlen, "request of %zu bytes is over the limit of %d", len,
				 VN_CLIENT_MAX_MESSAGE);
		else
			snprintf(err, errlen, "out of memory");
		return r;
	}
	struct receiver rc = {
		.on_frame = on_frame, .arg = arg, .err = err, .errlen = errlen,
	};
	const char *args[] = { filter, port ? port : "", field };
	r = control_stream(mountpoint, "stream", 3, args, on_frame_text, &rc, stop, err, errlen);
	free(field);
	free(rc.line);
	return r;
}
