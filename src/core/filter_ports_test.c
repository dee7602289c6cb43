/*
 * Unit test: what a port's refusal tells its client (vn_port_error), and
 * which filters with ports make their operations interruptible
 * (VN_FILTER_PORTS_ANSWER_ONLY).
 */
#include "core/filter_ports.h"

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
	fm_shutdown();
	printf("1..%d\n", unit_count);
	return 0;
}
