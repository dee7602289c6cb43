/*
 * Ports by name, per filter; see filter_ports.h.  A port is looked up under
 * port_lock and its callback called without it, so a filter may open
 * another port from inside one.  Ports are never closed one by one: they
 * go with their filter.
 */
#include "core/filter_ports.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t port_lock = PTHREAD_MUTEX_INITIALIZER;

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

int vn_port_open(struct vn_filter *f, const char *name, vn_port_fn *fn, void *priv)
{
	if (!f || !name || !fn || !port_name_valid(name))
		return -EINVAL;
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
		p->priv = priv;
	}
	pthread_mutex_unlock(&port_lock);
	return r;
}

void fm_port_names(struct vn_filter *f, char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	pthread_mutex_lock(&port_lock);
	for (unsigned int i = 0; i < f->nports && used < size; i++) {
		int n = snprintf(buf + used, size - used, "%s%s", i ? "," : "", f->ports[i].name);
		used += n > 0 ? (size_t)n : 0;
	}
	pthread_mutex_unlock(&port_lock);
	if (!buf[0])
		snprintf(buf, size, "-");
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
	if (!copy.fn) {
		if (port[0])
			snprintf(err, errlen, "filter '%s' has no port '%s'", filter, port);
		else
			snprintf(err, errlen, "filter '%s' has no port", filter);
		return -ENOENT;
	}
	void *reply = NULL;
	size_t reply_len = 0;
	int r = copy.fn(f, copy.priv, msg, len, &reply, &reply_len);
	if (r < 0) {
		free(reply);
		snprintf(err, errlen, "filter '%s' port '%s': %s", filter, copy.name, strerror(-r));
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
