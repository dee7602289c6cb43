/*
 * Unit test: what a port's refusal tells its client (vn_port_error), and
 * which filters with ports make their operations interruptible
 * (VN_FILTER_PORTS_ANSWER_ONLY, stream ports), and a stream port's
 * streams: frames, refusals, and their end when the filter goes.
 */
#include "core/filter_ports.h"
#include "core/filter_streams.h"

#include <stdlib.h>

#include <errno.h>
#include <string.h>

#include "../tests/unit.h"

/* Refuses every message; "why" says why, anything else gives the errno alone. */
static int refuse(struct vn_filter *f, void *priv, const void *msg, size_t len,
		  void **ret_reply, size_t *ret_len)
{
	if (len == 3 && !memcmp(msg, "why", 3))
		vn_port_error(f, "no '%.*s' here", (int)len, (const char *)msg);
	return -EINVAL;
}

static int open_port(struct vn_filter *f, const char *args)
{
	vn_port_error(f, "outside a port callback: %s", "ignored");
	return vn_port_open(f, "cmd", refuse, NULL);
}

static enum vn_verdict pass(struct vn_filter *f, struct vn_op *op, void **post)
{
	return VN_PASS;
}

static void done(struct vn_filter *f, void *ctx, int error, const void *reply, size_t len)
{
}

static const struct vn_filter_handler getattr_handler[] = {
	{ VN_OP_GETATTR, pass, NULL },
	{ VN_OP_NONE, NULL, NULL },
};

static struct vn_filter_ops ops(const char *name, int altitude, unsigned int flags)
{
	return (struct vn_filter_ops){ .api_version = VN_FILTER_API_VERSION,
				       .size = sizeof(struct vn_filter_ops), .name = name,
				       .altitude = altitude, .flags = flags,
				       .handlers = getattr_handler, .attach = open_port };
}

static bool send_says(const char *filter, const char *msg, const char *want)
{
	char err[512] = "";
	void *reply = NULL;
	size_t len = 0;
	int r = fm_port_send(filter, "cmd", msg, strlen(msg), &reply, &len, err, sizeof(err));
	printf("# %s\n", err);
	return r == -EINVAL && !reply && !strcmp(err, want);
}

/* A stream port: "no" is refused; each next gives "tick N". */
static int streams_open, streams_closed;

static int s_open(struct vn_filter *f, void *priv, const void *msg, size_t len, void **ret)
{
	if (len == 2 && !memcmp(msg, "no", 2)) {
		vn_port_error(f, "not today");
		return -EPERM;
	}
	streams_open++;
	*ret = calloc(1, sizeof(int));
	return *ret ? 0 : -ENOMEM;
}

static int s_next(struct vn_filter *f, void *stream, int timeout_ms, void **ret_frame,
		  size_t *ret_len)
{
	int *n = stream;
	char *frame = malloc(16);
	if (!frame)
		return -ENOMEM;
	*ret_len = (size_t)snprintf(frame, 16, "tick %d", ++*n);
	*ret_frame = frame;
	return 0;
}

static void s_close(struct vn_filter *f, void *stream)
{
	streams_closed++;
	free(stream);
}

static const struct vn_stream_ops ticks = { s_open, s_next, s_close };

static int open_stream_port(struct vn_filter *f, const char *args)
{
	return vn_port_open_stream(f, "ticks", &ticks, NULL);
}

/* Whether a GETATTR begun now arms interrupts. */
static bool getattr_armed(void)
{
	struct fm_call c = { .op.opcode = VN_OP_GETATTR };
	fm_call_begin(&c);
	bool armed = fm_call_cancellable(&c);
	fm_call_end(&c);
	return armed;
}

int main(void)
{
	char err[256];
	/* a stream port asks nothing: its filter's operations stay unarmed */
	struct vn_filter_ops streamer = ops("streamer", 400, 0);
	streamer.attach = open_stream_port;
	CHECK(fm_register(&streamer, NULL, NULL, "/lib/streamer.so", err, sizeof(err)) == 0);
	CHECK(!getattr_armed());
	struct fm_stream *s = NULL;
	CHECK(fm_stream_open("streamer", "no", "", 0, &s, err, sizeof(err)) == -ENOENT);
	CHECK(fm_stream_open("streamer", "", "no", 2, &s, err, sizeof(err)) == -EPERM &&
	      !strcmp(err, "filter 'streamer' port 'ticks': not today"));
	CHECK(fm_stream_open("streamer", "ticks", "go", 2, &s, err, sizeof(err)) == 0);
	void *frame = NULL;
	size_t flen = 0;
	CHECK(fm_stream_next(s, 0, &frame, &flen) == 0 && flen == 6 &&
	      !memcmp(frame, "tick 1", 6));
	free(frame);
	CHECK(fm_port_send("streamer", "ticks", "x", 1, &frame, &flen, err, sizeof(err)) ==
	      -EOPNOTSUPP);

	struct vn_filter_ops quiet = ops("quiet", 300, VN_FILTER_PORTS_ANSWER_ONLY);
	CHECK(fm_register(&quiet, NULL, NULL, NULL, err, sizeof(err)) == 0);
	/* a filter whose ports only answer leaves its operations unarmed, and may not ask */
	CHECK(!getattr_armed());
	CHECK(vn_port_ask(fm_find("quiet"), "cmd", NULL, "q", 1, 1000, done, NULL) == -EPERM);

	/* a built-in's reason alone, a loaded filter's after its name; else the errno's text */
	CHECK(send_says("quiet", "why", "no 'why' here"));
	CHECK(send_says("quiet", "x", "filter 'quiet' port 'cmd': Invalid argument"));
	struct vn_filter_ops asks = ops("asks", 200, 0);
	CHECK(fm_register(&asks, NULL, NULL, "/lib/asks.so", err, sizeof(err)) == 0);
	CHECK(send_says("asks", "why", "filter 'asks' port 'cmd': no 'why' here"));
	CHECK(send_says("asks", "x", "filter 'asks' port 'cmd': Invalid argument"));

	/* a filter with a port that may ask arms its operations */
	CHECK(getattr_armed());
	CHECK(vn_port_ask(fm_find("asks"), "cmd", NULL, "q", 1, 1000, done, NULL) == -ENOTCONN);
	/* the filter goes: its stream is closed first, and its thread finds it ended */
	fm_shutdown();
	CHECK(streams_open == 1 && streams_closed == 1);
	CHECK(fm_stream_next(s, 0, &frame, &flen) == -ENOTCONN && !frame);
	fm_stream_close(s);
	CHECK(streams_closed == 1);
	printf("1..%d\n", unit_count);
	return 0;
}
