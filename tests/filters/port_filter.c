/*
 * Test filter with communication ports, configured by a client while the
 * mount runs:
 *   echo     replies "echo:" and the message, bytes as sent
 *   deny     the message is a name: unlinks of that name are refused with
 *            EPERM from then on ("" clears it); replies "denying NAME"
 *   fill     the message is a number N: replies N bytes of 'x'
 * Unknown or bad requests answer -EINVAL; fill says why a message is not a
 * number (vn_port_error), and gives a number over its bound the errno alone.  Its teardown refuses to unload
 * (EBUSY) while a name is denied.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <veneer/filter.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char denied[256];	/* protected by lock */

static int reply_text(const char *prefix, const void *msg, size_t len, void **ret_reply,
		      size_t *ret_len)
{
	size_t n = strlen(prefix);
	char *r = malloc(n + len);
	if (!r)
		return -ENOMEM;
	memcpy(r, prefix, n);
	memcpy(r + n, msg, len);
	*ret_reply = r;
	*ret_len = n + len;
	return 0;
}

static int echo(struct vn_filter *f, void *priv, const void *msg, size_t len, void **ret_reply,
		size_t *ret_len)
{
	return reply_text("echo:", msg, len, ret_reply, ret_len);
}

static int deny(struct vn_filter *f, void *priv, const void *msg, size_t len, void **ret_reply,
		size_t *ret_len)
{
	if (len >= sizeof(denied) || memchr(msg, '\0', len) || memchr(msg, '/', len))
		return -EINVAL;
	pthread_mutex_lock(&lock);
	memcpy(denied, msg, len);
	denied[len] = '\0';
	pthread_mutex_unlock(&lock);
	return reply_text("denying ", msg, len, ret_reply, ret_len);
}

static int fill(struct vn_filter *f, void *priv, const void *msg, size_t len, void **ret_reply,
		size_t *ret_len)
{
	char num[32];
	if (len == 0 || len >= sizeof(num))
		return -EINVAL;
	memcpy(num, msg, len);
	num[len] = '\0';
	char *end;
	unsigned long n = strtoul(num, &end, 10);
	if (*end) {
		vn_port_error(f, "'%s' is not a number", num);
		return -EINVAL;
	}
	if (n > 2 * VN_PORT_MAX_MESSAGE)
		return -EINVAL;
	char *r = malloc(n ? n : 1);
	if (!r)
		return -ENOMEM;
	memset(r, 'x', n);
	*ret_reply = r;
	*ret_len = n;
	return 0;
}

static enum vn_verdict unlink_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	pthread_mutex_lock(&lock);
	bool refuse = denied[0] && !strcmp(op->name, denied);
	pthread_mutex_unlock(&lock);
	if (!refuse)
		return VN_PASS;
	op->error = -EPERM;
	return VN_COMPLETE;
}

static int attach(struct vn_filter *f, const char *args)
{
	pthread_mutex_lock(&lock);
	denied[0] = '\0';	/* loaded again, perhaps without a fresh copy */
	pthread_mutex_unlock(&lock);
	int r = vn_port_open(f, "echo", echo, NULL);
	if (r == 0)
		r = vn_port_open(f, "deny", deny, NULL);
	if (r == 0)
		r = vn_port_open(f, "fill", fill, NULL);
	/* the API's own checks, seen from a filter */
	if (r == 0 && (vn_port_open(f, "echo", echo, NULL) != -EEXIST ||
		       vn_port_open(f, "no/slash", echo, NULL) != -EINVAL))
		r = -EPROTO;
	return r;
}

static int teardown(struct vn_filter *f, bool force)
{
	pthread_mutex_lock(&lock);
	bool in_force = denied[0] != '\0';
	pthread_mutex_unlock(&lock);
	return in_force ? -EBUSY : 0;
}

static const struct vn_filter_handler handlers[] = {
	{ VN_OP_UNLINK, unlink_pre, NULL },
	{ VN_OP_NONE, NULL, NULL },
};

const struct vn_filter_ops vn_filter_entry = {
	.api_version = VN_FILTER_API_VERSION,
	.size = sizeof(struct vn_filter_ops),
	.name = "test-ports",
	.altitude = 500,
	.flags = VN_FILTER_OPENS_SKIPPABLE | VN_FILTER_DATA_SKIPPABLE,
	.attach = attach,
	.handlers = handlers,
	.teardown = teardown,
};
