/*
 * Test filter with a stream port "ops" and the real tree below it:
 *   ops      each client's request is a word: "binary" streams, as one
 *            frame per record, the bytes "\0op\0" then the operation's
 *            name; anything else ("" included) lines "NAME PATH\n".  A
 *            record is made by the pre of every operation, queued per
 *            client in a ring of RING records; a full ring drops the
 *            record (the request never waits) and the next frame says
 *            "# N dropped\n" first.  "refuse" is refused with a reason.
 *   real     a OPEN of a file named "peek-*" reads its first bytes from
 *            the real file below the stack (vn_real_open), and a LOOKUP
 *            of "peek-root" reads "/real.txt" from the lower's root
 *            (vn_real_openat), from inside the pre; the bytes read are
 *            logged as "stream-filter: real NAME: BYTES".  Neither may
 *            reach the mount again (that would recurse and hang).
 * Its teardown wakes the streams' next, so an unload does not wait out
 * their timeouts; its detach logs how many streams it still had: 0 when
 * the daemon closed them all before detaching it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <veneer/filter.h>

#define RING 64
#define LINE 300

struct client {
	bool binary;
	char ring[RING][LINE];
	size_t lens[RING];
	unsigned int head, count;
	unsigned long long dropped;
	struct client *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static struct client *clients;	/* lock */
static int nclients;		/* lock */
static bool leaving;		/* lock: teardown ran, next waits no more */

static void publish(const char *rec, size_t len)
{
	pthread_mutex_lock(&lock);
	for (struct client *c = clients; c; c = c->next) {
		if (c->count == RING) {
			c->dropped++;
			continue;
		}
		unsigned int at = (c->head + c->count++) % RING;
		memcpy(c->ring[at], rec, len);
		c->lens[at] = len;
	}
	pthread_cond_broadcast(&more);
	pthread_mutex_unlock(&lock);
}

static void peek(const char *what, int fd)
{
	char buf[64];
	ssize_t n = fd < 0 ? 0 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	vn_log(LOG_NOTICE, "stream-filter: real %s: %s", what,
	       fd < 0 ? strerror(-fd) : n < 0 ? "read failed" : buf);
}

static enum vn_verdict pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	char path[200] = "", rec[LINE];
	(void)vn_node_path(op->node, path, sizeof(path));
	const char *name = vn_opcode_name(op->opcode);
	int n = snprintf(rec, sizeof(rec), "%s %s%s%s\n", name, path,
			 op->name && strcmp(path, "/") ? "/" : "", op->name ? op->name : "");
	publish(rec, n < 0 ? 0 : (size_t)n >= sizeof(rec) ? sizeof(rec) - 1 : (size_t)n);
	if (op->opcode == VN_OP_OPEN) {
		char name_buf[256];
		struct vn_node *parent = vn_node_parent(op->node, name_buf, sizeof(name_buf));
		if (parent) {
			vn_node_unref(parent);
			if (!strncmp(name_buf, "peek-", 5))
				peek(name_buf, vn_real_open(op->node, O_RDONLY));
		}
	}
	if (op->opcode == VN_OP_LOOKUP && !strcmp(op->name, "peek-root"))
		peek("/real.txt", vn_real_openat(vn_root_node(), "real.txt", O_RDONLY));
	return VN_PASS;
}

static int ops_open(struct vn_filter *f, void *priv, const void *msg, size_t len, void **ret)
{
	if (len == 6 && !memcmp(msg, "refuse", 6)) {
		vn_port_error(f, "refused as asked");
		return -EPERM;
	}
	struct client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->binary = len == 6 && !memcmp(msg, "binary", 6);
	pthread_mutex_lock(&lock);
	c->next = clients;
	clients = c;
	nclients++;
	pthread_mutex_unlock(&lock);
	*ret = c;
	return 0;
}

static int ops_next(struct vn_filter *f, void *stream, int timeout_ms, void **ret_frame,
		    size_t *ret_len)
{
	struct client *c = stream;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += (long)timeout_ms * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	char *out = malloc(RING * (LINE + 4) + 64);
	if (!out)
		return -ENOMEM;
	size_t len = 0;
	pthread_mutex_lock(&lock);
	if (!c->count && !c->dropped && timeout_ms > 0 && !leaving)
		(void)pthread_cond_timedwait(&more, &lock, &until);
	if (c->dropped) {
		len += (size_t)sprintf(out, "# %llu dropped\n", c->dropped);
		c->dropped = 0;
	}
	/* binary: one record a frame, the rest stays for the next call */
	unsigned int take = c->binary && c->count ? 1 : c->count;
	for (unsigned int i = 0; i < take; i++) {
		unsigned int at = (c->head + i) % RING;
		if (c->binary) {
			memcpy(out + len, "\0op\0", 4);
			len += 4;
		}
		memcpy(out + len, c->ring[at], c->lens[at]);
		len += c->lens[at];
	}
	c->head = (c->head + take) % RING;
	c->count -= take;
	pthread_mutex_unlock(&lock);
	if (!len) {
		free(out);
		out = NULL;
	}
	*ret_frame = out;
	*ret_len = len;
	return 0;
}

static void ops_close(struct vn_filter *f, void *stream)
{
	pthread_mutex_lock(&lock);
	for (struct client **p = &clients; *p; p = &(*p)->next)
		if (*p == stream) {
			*p = ((struct client *)stream)->next;
			break;
		}
	nclients--;
	pthread_mutex_unlock(&lock);
	free(stream);
}

static const struct vn_stream_ops ops_stream = {
	.open = ops_open,
	.next = ops_next,
	.close = ops_close,
};

static int attach(struct vn_filter *f, const char *args)
{
	return vn_port_open_stream(f, "ops", &ops_stream, NULL);
}

static int teardown(struct vn_filter *f, bool force)
{
	pthread_mutex_lock(&lock);
	leaving = true;
	pthread_cond_broadcast(&more);
	pthread_mutex_unlock(&lock);
	return 0;
}

static void detach(struct vn_filter *f)
{
	pthread_mutex_lock(&lock);
	int n = nclients;
	pthread_mutex_unlock(&lock);
	vn_log(LOG_NOTICE, "stream-filter: detached with %d streams open", n);
}

static const struct vn_filter_handler handlers[] = {
	{ VN_OP_LOOKUP, pre, NULL }, { VN_OP_GETATTR, pre, NULL }, { VN_OP_OPEN, pre, NULL },
	{ VN_OP_READ, pre, NULL }, { VN_OP_MKDIR, pre, NULL }, { VN_OP_UNLINK, pre, NULL },
	{ VN_OP_CREATE, pre, NULL }, { VN_OP_WRITE, pre, NULL },
	{ VN_OP_NONE, NULL, NULL },
};

const struct vn_filter_ops vn_filter_entry = {
	.api_version = VN_FILTER_API_VERSION,
	.size = sizeof(struct vn_filter_ops),
	.name = "test-stream",
	.altitude = 600,
	.attach = attach,
	.detach = detach,
	.handlers = handlers,
	.teardown = teardown,
};
