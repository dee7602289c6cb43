/*
 * Ports by name, per filter; see filter_ports.h.  A port is looked up under
 * port_lock and its callback called without it, so a filter may open
 * another port from inside one.  Ports are never closed one by one: they
 * go with their filter.
 *
 * Questions (vn_port_ask) live in their port's client, in the order asked,
 * under port_lock: the client's stream thread takes the new ones out to
 * send (fm_port_client_next), an answer on the control thread takes its
 * question away by number.  Whoever takes a question away calls its DONE,
 * after dropping the lock, so DONE may resume an operation.
 */
#include "core/filter_ports.h"
#include "core/filter_streams.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct question {
	uint64_t id;
	int64_t deadline;		/* CLOCK_MONOTONIC, ms */
	struct vn_filter *f;
	const struct vn_op *op;		/* what it is about, or NULL: withdrawn when cancelled */
	vn_port_reply_fn *done;
	void *ctx;
	void *msg;			/* NULL once handed to the client */
	size_t len;
	struct question *next;
};

struct port_client {
	struct fm_port *port;		/* NULL once the port closed */
	pid_t pid;			/* the client's process */
	uint64_t next_id;
	struct question *questions;	/* oldest first */
	pthread_cond_t cond;		/* a new question, or the port closed */
};

static pthread_mutex_t port_lock = PTHREAD_MUTEX_INITIALIZER;
/* Filters that opened a port, for lookups by name off the control thread. */
static struct vn_filter *with_ports[VN_MAX_FILTERS];	/* port_lock */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool port_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n >= VN_PORT_NAME_MAX)
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

static struct fm_port *find_port(struct vn_filter *f, const char *name)
{
	if (!name[0])
		return f->nports ? &f->ports[0] : NULL;
	for (unsigned int i = 0; i < f->nports; i++)
		if (!strcmp(f->ports[i].name, name))
			return &f->ports[i];
	return NULL;
}

/* Opens F's port NAME: an answering port (FN) or a stream port (STREAM). */
static int port_open(struct vn_filter *f, const char *name, vn_port_fn *fn,
		     const struct vn_stream_ops *stream, void *priv)
{
	int r = 0;
	pthread_mutex_lock(&port_lock);
	if (find_port(f, name)) {
		r = -EEXIST;
	} else if (f->nports >= VN_MAX_PORTS) {
		r = -ENOSPC;
	} else {
		struct fm_port *p = &f->ports[f->nports++];
		strcpy(p->name, name);
		p->fn = fn;
		p->stream = stream;
		p->streams = NULL;
		p->priv = priv;
		p->client = NULL;
		/* a stream port asks nothing: it arms no interrupts (the trace filter's) */
		if (fn)
			__atomic_store_n(&f->has_ports, true, __ATOMIC_RELEASE);
		if (f->nports == 1)
			for (unsigned int i = 0; i < VN_MAX_FILTERS; i++)
				if (!with_ports[i]) {
					with_ports[i] = f;
					break;
				}
	}
	pthread_mutex_unlock(&port_lock);
	return r;
}

int vn_port_open(struct vn_filter *f, const char *name, vn_port_fn *fn, void *priv)
{
	if (!f || !name || !fn || !port_name_valid(name))
		return -EINVAL;
	return port_open(f, name, fn, NULL, priv);
}

int vn_port_open_stream(struct vn_filter *f, const char *name, const struct vn_stream_ops *ops,
			void *priv)
{
	if (!f || !name || !ops || !ops->open || !ops->next || !ops->close ||
	    !port_name_valid(name))
		return -EINVAL;
	return port_open(f, name, NULL, ops, priv);
}

void fm_port_names(struct vn_filter *f, bool clients, char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	pthread_mutex_lock(&port_lock);
	for (unsigned int i = 0; i < f->nports && used < size; i++) {
		const struct fm_port *p = &f->ports[i];
		if (clients && !p->client)
			continue;
		int n = clients ? snprintf(buf + used, size - used, "%s%s:%d", used ? "," : "",
					   p->name, (int)p->client->pid)
				: snprintf(buf + used, size - used, "%s%s", used ? "," : "", p->name);
		used += n > 0 ? (size_t)n : 0;
	}
	pthread_mutex_unlock(&port_lock);
	if (!buf[0])
		snprintf(buf, size, "-");
}

/* The reason vn_port_error() fills while F's port callback runs on this thread. */
static __thread struct vn_filter *reason_filter;
static __thread char reason[512];

void vn_port_error(struct vn_filter *f, const char *fmt, ...)
{
	if (!f || f != reason_filter)
		return;		/* not from inside its port callback: nobody to tell */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
}

/* Why F's port PORT refused with R: its own reason, as attach_refused() words it, or R's text. */
static void port_refused(const struct vn_filter *f, const char *filter, const char *port, int r,
			 char *err, size_t errlen)
{
	if (!f->origin && reason[0])
		snprintf(err, errlen, "%s", reason);
	else
		snprintf(err, errlen, "filter '%s' port '%s': %s", filter, port,
			 reason[0] ? reason : strerror(-r));
}

void fm_port_reason_begin(struct vn_filter *f)
{
	reason[0] = '\0';
	reason_filter = f;
}

void fm_port_reason_end(const struct vn_filter *f, const char *filter, const char *port, int r,
			char *err, size_t errlen)
{
	reason_filter = NULL;
	if (r < 0)
		port_refused(f, filter, port, r, err, errlen);
}

int fm_port_send(const char *filter, const char *port, const void *msg, size_t len,
		 void **ret_reply, size_t *ret_len, char *err, size_t errlen)
{
	struct vn_filter *f = fm_find(filter);
	if (!f) {
		snprintf(err, errlen, "no filter '%s' on this mount", filter);
		return -ENOENT;
	}
	if (len > VN_PORT_MAX_MESSAGE) {
		snprintf(err, errlen, "message of %zu bytes is over the limit of %d", len,
			 VN_PORT_MAX_MESSAGE);
		return -EMSGSIZE;
	}
	pthread_mutex_lock(&port_lock);
	struct fm_port *p = find_port(f, port);
	struct fm_port copy = p ? *p : (struct fm_port){ .fn = NULL };
	pthread_mutex_unlock(&port_lock);
	if (copy.stream) {
		snprintf(err, errlen, "port '%s' of filter '%s' streams: it takes no messages",
			 copy.name, filter);
		return -EOPNOTSUPP;
	}
	if (!copy.fn) {
		if (port[0])
			snprintf(err, errlen, "filter '%s' has no port '%s'", filter, port);
		else
			snprintf(err, errlen, "filter '%s' has no port", filter);
		return -ENOENT;
	}
	void *reply = NULL;
	size_t reply_len = 0;
	reason[0] = '\0';
	reason_filter = f;
	int r = copy.fn(f, copy.priv, msg, len, &reply, &reply_len);
	reason_filter = NULL;
	if (r < 0) {
		free(reply);
		port_refused(f, filter, copy.name, r, err, errlen);
		return r;
	}
	if (reply_len > VN_PORT_MAX_MESSAGE) {
		free(reply);
		snprintf(err, errlen, "filter '%s' port '%s' gave a reply over %d bytes", filter,
			 copy.name, VN_PORT_MAX_MESSAGE);
		return -EMSGSIZE;
	}
	if (reply_len && !reply) {
		snprintf(err, errlen, "filter '%s' port '%s' gave a reply without its bytes",
			 filter, copy.name);
		return -EIO;
	}
	*ret_reply = reply;
	*ret_len = reply_len;
	return 0;
}

/* ---- questions: filter -> client ---- */

/* FILTER's port PORT by name, among filters that opened ports.  Under port_lock. */
static struct fm_port *port_by_name_locked(const char *filter, const char *port)
{
	for (unsigned int i = 0; i < VN_MAX_FILTERS; i++)
		if (with_ports[i] && !strcmp(with_ports[i]->ops->name, filter))
			return find_port(with_ports[i], port);
	return NULL;
}

/* The thread group (process) of thread TID, from /proc; 0 when unknown. */
static pid_t process_of(pid_t tid)
{
	char path[64], line[128];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	FILE *fp = fopen(path, "re");
	if (!fp)
		return 0;
	pid_t tgid = 0;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "Tgid: %d", &tgid) == 1)
			break;
	fclose(fp);
	return tgid;
}

static void answer_all(struct question *q, int error)
{
	while (q) {
		struct question *next = q->next;
		q->done(q->f, q->ctx, error, NULL, 0);
		free(q->msg);
		free(q);
		q = next;
	}
}

/* The client's process id, or 0 without a client. */
static pid_t client_pid(struct vn_filter *f, const char *port, int *ret_err)
{
	pthread_mutex_lock(&port_lock);
	struct fm_port *p = find_port(f, port);
	pid_t pid = p && p->client ? p->client->pid : 0;
	*ret_err = !p ? -ENOENT : !pid ? -ENOTCONN : 0;
	pthread_mutex_unlock(&port_lock);
	return pid;
}

int vn_port_ask(struct vn_filter *f, const char *port, const struct vn_op *op, const void *msg,
		size_t len, int timeout_ms, vn_port_reply_fn *done, void *ctx)
{
	if (!f || !port || !done || timeout_ms <= 0 || timeout_ms > VN_PORT_MAX_TIMEOUT_MS)
		return -EINVAL;
	if (len > VN_PORT_MAX_MESSAGE)
		return -EMSGSIZE;
	if (f->ops->flags & VN_FILTER_PORTS_ANSWER_ONLY)
		return -EPERM;	/* its operations are not armed for interrupts */
	int r;
	pid_t pid = client_pid(f, port, &r);
	if (r < 0)
		return r;
	/* the client may be waiting for this very operation: never ask it about its own */
	if (op && op->caller.pid > 0 && process_of(op->caller.pid) == pid)
		return -EDEADLK;
	struct question *q = calloc(1, sizeof(*q));
	if (!q || !(q->msg = malloc(len ? len : 1))) {
		free(q);
		return -ENOMEM;
	}
	memcpy(q->msg, msg, len);
	q->len = len;
	q->f = f;
	q->op = op;
	q->done = done;
	q->ctx = ctx;
	q->deadline = now_ms() + timeout_ms;
	pthread_mutex_lock(&port_lock);
	struct fm_port *p = find_port(f, port);
	struct port_client *c = p ? p->client : NULL;
	if (c) {
		q->id = ++c->next_id;
		struct question **tail = &c->questions;
		while (*tail)
			tail = &(*tail)->next;
		*tail = q;
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&port_lock);
	if (!c) {
		free(q->msg);
		free(q);
		return -ENOTCONN;
	}
	return 0;
}

int fm_port_stream_find(const char *filter, const char *port, fm_stream_found_fn *found,
			void *arg, char *err, size_t errlen)
{
	int r;
	pthread_mutex_lock(&port_lock);
	struct fm_port *p = port_by_name_locked(filter, port);
	if (!p) {
		r = -ENOENT;
		snprintf(err, errlen, "no port '%s' of a filter '%s' on this mount", port, filter);
	} else if (!p->stream) {
		r = -EOPNOTSUPP;
		snprintf(err, errlen, "port '%s' of filter '%s' does not stream", p->name, filter);
	} else {
		struct vn_filter *f = NULL;
		for (unsigned int i = 0; i < VN_MAX_FILTERS && !f; i++)
			if (with_ports[i] && !strcmp(with_ports[i]->ops->name, filter))
				f = with_ports[i];
		r = found(f, p, arg);
	}
	pthread_mutex_unlock(&port_lock);
	return r;
}

int fm_port_listen(const char *filter, const char *port, pid_t pid,
		   struct port_client **ret_client, char *err, size_t errlen)
{
	struct port_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_cond_init(&c->cond, NULL);
	c->pid = pid;
	int r = 0;
	pthread_mutex_lock(&port_lock);
	struct fm_port *p = port_by_name_locked(filter, port);
	if (!p) {
		r = -ENOENT;
		snprintf(err, errlen, "no port '%s' of a filter '%s' on this mount", port, filter);
	} else if (p->stream) {
		r = -EOPNOTSUPP;
		snprintf(err, errlen, "port '%s' of filter '%s' streams: it asks no questions",
			 p->name, filter);
	} else if (p->client) {
		r = -EBUSY;
		snprintf(err, errlen, "port '%s' of filter '%s' already has a client (pid %d)",
			 p->name, filter, (int)p->client->pid);
	} else {
		p->client = c;
		c->port = p;
	}
	pthread_mutex_unlock(&port_lock);
	if (r < 0) {
		pthread_cond_destroy(&c->cond);
		free(c);
		return r;
	}
	*ret_client = c;
	return 0;
}

/* Unlinks C's questions past their deadline into *expired.  Under port_lock. */
static void take_expired_locked(struct port_client *c, int64_t now, struct question **expired)
{
	for (struct question **pq = &c->questions; *pq;) {
		struct question *q = *pq;
		if (q->deadline > now) {
			pq = &q->next;
			continue;
		}
		*pq = q->next;
		q->next = *expired;
		*expired = q;
	}
}

static bool has_unsent_locked(const struct port_client *c)
{
	for (const struct question *q = c->questions; q; q = q->next)
		if (q->msg)
			return true;
	return false;
}

/* Moves the bytes of C's unsent questions into a new array.  Under port_lock. */
static int take_unsent_locked(struct port_client *c, struct fm_question **ret, size_t *ret_n)
{
	size_t n = 0;
	for (struct question *q = c->questions; q; q = q->next)
		n += q->msg != NULL;
	*ret = NULL;
	*ret_n = 0;
	if (!n)
		return 0;
	struct fm_question *out = calloc(n, sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (struct question *q = c->questions; q; q = q->next) {
		if (!q->msg)
			continue;
		out[*ret_n].id = q->id;
		out[*ret_n].msg = q->msg;
		out[*ret_n].len = q->len;
		(*ret_n)++;
		q->msg = NULL;
	}
	*ret = out;
	return 0;
}

int fm_port_client_next(struct port_client *c, int timeout_ms, struct fm_question **ret,
			size_t *ret_n)
{
	struct question *expired = NULL;
	*ret = NULL;
	*ret_n = 0;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += (long)timeout_ms * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&port_lock);
	if (c->port && !has_unsent_locked(c) && timeout_ms > 0)
		(void)pthread_cond_timedwait(&c->cond, &port_lock, &until);
	int r = -ENOTCONN;
	if (c->port) {
		take_expired_locked(c, now_ms(), &expired);
		r = take_unsent_locked(c, ret, ret_n);
	}
	pthread_mutex_unlock(&port_lock);
	answer_all(expired, -ETIMEDOUT);
	return r;
}

void fm_port_client_close(struct port_client *c)
{
	pthread_mutex_lock(&port_lock);
	if (c->port)
		c->port->client = NULL;
	struct question *left = c->questions;
	c->questions = NULL;
	pthread_mutex_unlock(&port_lock);
	answer_all(left, -ENOTCONN);
	pthread_cond_destroy(&c->cond);
	free(c);
}

int fm_port_answer(const char *filter, const char *port, uint64_t id, const void *reply,
		   size_t len, char *err, size_t errlen)
{
	struct question *found = NULL;
	int r = -ENOTCONN;
	pthread_mutex_lock(&port_lock);
	struct fm_port *p = port_by_name_locked(filter, port);
	struct port_client *c = p ? p->client : NULL;
	for (struct question **pq = c ? &c->questions : NULL; pq && *pq; pq = &(*pq)->next) {
		if ((*pq)->id == id && !(*pq)->msg) {
			found = *pq;
			*pq = found->next;
			break;
		}
	}
	if (c)
		r = found ? 0 : -ENOENT;
	pthread_mutex_unlock(&port_lock);
	if (r == -ENOTCONN)
		snprintf(err, errlen, "port '%s' of filter '%s' has no client", port, filter);
	else if (r == -ENOENT)
		snprintf(err, errlen, "no question %llu waiting on port '%s' (timed out?)",
			 (unsigned long long)id, port);
	if (found) {
		found->done(found->f, found->ctx, 0, reply, len);
		free(found);
	}
	return r;
}

/* Takes every question of F's ports; with CLOSE also disconnects the clients. */
static struct question *take_all(struct vn_filter *f, bool close)
{
	struct question *all = NULL;
	pthread_mutex_lock(&port_lock);
	for (unsigned int i = 0; i < f->nports; i++) {
		struct port_client *c = f->ports[i].client;
		if (!c)
			continue;
		struct question **tail = &c->questions;
		while (*tail)
			tail = &(*tail)->next;
		*tail = all;
		all = c->questions;
		c->questions = NULL;
		if (close) {
			c->port = NULL;
			f->ports[i].client = NULL;
			pthread_cond_broadcast(&c->cond);
		}
	}
	if (close)
		for (unsigned int i = 0; i < VN_MAX_FILTERS; i++)
			if (with_ports[i] == f)
				with_ports[i] = NULL;
	pthread_mutex_unlock(&port_lock);
	return all;
}

void fm_ports_cancel(struct vn_filter *f)
{
	answer_all(take_all(f, false), -ENOTCONN);
}

void fm_ports_close(struct vn_filter *f)
{
	answer_all(take_all(f, true), -ENOTCONN);
	/* no longer found by name: no stream opens on its ports now */
	fm_streams_close(f);
}

void fm_ports_withdraw(const struct vn_op *op)
{
	struct question *found = NULL;
	pthread_mutex_lock(&port_lock);
	for (unsigned int i = 0; i < VN_MAX_FILTERS; i++) {
		struct vn_filter *f = with_ports[i];
		for (unsigned int j = 0; f && j < f->nports; j++) {
			struct port_client *c = f->ports[j].client;
			for (struct question **pq = c ? &c->questions : NULL; pq && *pq;) {
				struct question *q = *pq;
				if (q->op != op) {
					pq = &q->next;
					continue;
				}
				*pq = q->next;
				q->next = found;
				found = q;
			}
		}
	}
	pthread_mutex_unlock(&port_lock);
	answer_all(found, -EINTR);
}
