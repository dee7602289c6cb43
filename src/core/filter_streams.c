/*
 * Stream ports; see filter_streams.h.  Every open stream is in one list
 * under stream_lock.  A stream is busy while its thread runs one of the
 * filter's callbacks for it (outside the lock); an unload takes the
 * filter's streams out of the list only when they are not busy, and calls
 * their close itself, so no callback of the filter runs once
 * fm_streams_close returns.  Lock order: the ports' lock, then
 * stream_lock (fm_stream_open registers under both).
 */
#include "core/filter_streams.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/filter_ports.h"

struct fm_stream {
	struct vn_filter *f;		/* NULL once an unload took it: stream_lock */
	const struct vn_stream_ops *ops;
	void *priv;			/* the port's */
	void *ctx;			/* the filter's state for this stream */
	char filter[VN_PORT_NAME_MAX + 64], port[VN_PORT_NAME_MAX];
	bool busy;			/* a callback runs: stream_lock */
	struct fm_stream *next;		/* in streams while f is set */
};

static pthread_mutex_t stream_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stream_idle = PTHREAD_COND_INITIALIZER;	/* a callback returned */
static struct fm_stream *streams;				/* stream_lock */

static void unlink_locked(struct fm_stream *s)
{
	for (struct fm_stream **p = &streams; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	s->next = NULL;
}

/* Under the ports' lock: S belongs to F's port PORT from now on, busy (its open is to run). */
static int register_stream(struct vn_filter *f, struct fm_port *port, void *arg)
{
	struct fm_stream *s = arg;
	s->f = f;
	s->ops = port->stream;
	s->priv = port->priv;
	snprintf(s->port, sizeof(s->port), "%s", port->name);
	pthread_mutex_lock(&stream_lock);
	s->busy = true;
	s->next = streams;
	streams = s;
	pthread_mutex_unlock(&stream_lock);
	return 0;
}

/* The callback of S that ran is done. */
static void idle(struct fm_stream *s)
{
	pthread_mutex_lock(&stream_lock);
	s->busy = false;
	pthread_cond_broadcast(&stream_idle);
	pthread_mutex_unlock(&stream_lock);
}

int fm_stream_open(const char *filter, const char *port, const void *msg, size_t len,
		   struct fm_stream **ret, char *err, size_t errlen)
{
	struct fm_stream *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(s->filter, sizeof(s->filter), "%s", filter);
	int r = fm_port_stream_find(filter, port, register_stream, s, err, errlen);
	if (r < 0) {
		free(s);
		return r;
	}
	/* registered and busy: an unload waits for this open before it closes the stream */
	fm_port_reason_begin(s->f);
	r = s->ops->open(s->f, s->priv, msg, len, &s->ctx);
	fm_port_reason_end(s->f, s->filter, s->port, r, err, errlen);
	if (r < 0) {
		pthread_mutex_lock(&stream_lock);
		unlink_locked(s);
		pthread_cond_broadcast(&stream_idle);
		pthread_mutex_unlock(&stream_lock);
		free(s);
		return r;
	}
	idle(s);
	*ret = s;
	return 0;
}

int fm_stream_next(struct fm_stream *s, int timeout_ms, void **ret_frame, size_t *ret_len)
{
	*ret_frame = NULL;
	*ret_len = 0;
	pthread_mutex_lock(&stream_lock);
	struct vn_filter *f = s->f;
	if (f)
		s->busy = true;
	pthread_mutex_unlock(&stream_lock);
	if (!f)
		return -ENOTCONN;
	void *frame = NULL;
	size_t len = 0;
	int r = s->ops->next(f, s->ctx, timeout_ms, &frame, &len);
	idle(s);
	if (r == 0 && len > VN_PORT_MAX_FRAME) {
		r = -EMSGSIZE;
	} else if (r == 0 && len && !frame) {
		r = -EIO;
	} else if (r == 0) {
		*ret_frame = frame;
		*ret_len = frame ? len : 0;
		return 0;
	}
	free(frame);
	return r > 0 ? -EIO : r;
}

void fm_stream_close(struct fm_stream *s)
{
	pthread_mutex_lock(&stream_lock);
	struct vn_filter *f = s->f;
	if (f)
		s->busy = true;	/* stays listed: an unload waits for this close */
	pthread_mutex_unlock(&stream_lock);
	if (f)
		s->ops->close(f, s->ctx);
	pthread_mutex_lock(&stream_lock);
	if (f)
		unlink_locked(s);
	pthread_cond_broadcast(&stream_idle);
	pthread_mutex_unlock(&stream_lock);
	free(s);
}

/* One of F's streams that is not busy, taken out of the list; NULL when none is left. */
static struct fm_stream *take_one_locked(struct vn_filter *f)
{
	for (;;) {
		bool waiting = false;
		for (struct fm_stream *s = streams; s; s = s->next) {
			if (s->f != f)
				continue;
			if (s->busy) {
				waiting = true;
				continue;
			}
			unlink_locked(s);
			s->f = NULL;
			return s;
		}
		if (!waiting)
			return NULL;
		pthread_cond_wait(&stream_idle, &stream_lock);
	}
}

void fm_streams_close(struct vn_filter *f)
{
	pthread_mutex_lock(&stream_lock);
	struct fm_stream *s;
	while ((s = take_one_locked(f))) {
		/* S's thread finds f gone and frees S: copy what close needs first */
		const struct vn_stream_ops *ops = s->ops;
		void *ctx = s->ctx;
		pthread_mutex_unlock(&stream_lock);
		ops->close(f, ctx);
		pthread_mutex_lock(&stream_lock);
	}
	pthread_mutex_unlock(&stream_lock);
}
