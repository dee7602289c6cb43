/*
 * Kernel cache invalidation (and cache offers) on a thread of its own.
 *
 * A notification can wait for a kernel lock held by a request that waits
 * for this daemon, so it is never sent from a request handler (DESIGN
 * section 4): filters queue them with vn_invalidate_entry/node() and this
 * thread sends them.  Queued items carry node ids, not node pointers, so
 * a node freed meanwhile is never touched (the kernel ignores ids it does
 * not know, and at worst drops the cache of a node that reused the id).
 *
 * Lock order: inval.lock is a leaf; it is not held while notifying.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "frontend/fuse_request.h"
#include "frontend/inval.h"

struct inval_item {
	fuse_ino_t ino;
	char *name;			/* entry invalidation; NULL otherwise */
	void *data;			/* cache offer (notify_store) of size bytes at offset */
	size_t size;
	off_t offset;
	struct inval_item *next;
};

/* Bytes of cache offers queued at most: they are optional. */
#define OFFER_QUEUE_MAX (64u << 20)

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* work queued, or stopping */
	pthread_cond_t done;		/* sent counter advanced */
	struct inval_item *head, *tail;
	uint64_t queued, sent;
	size_t offer_bytes;		/* data of queued cache offers */
	struct fuse_session *se;	/* NULL: not running; queued items are dropped */
	bool stop;
	pthread_t thread;
} inval = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
	.done = PTHREAD_COND_INITIALIZER,
};

static void send_one(struct fuse_session *se, const struct inval_item *it)
{
	int r;
	if (it->data) {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(it->size);
		bv.buf[0].mem = it->data;
		r = fuse_lowlevel_notify_store(se, it->ino, it->offset, &bv, 0);
	} else if (it->name) {
		r = fuse_lowlevel_notify_inval_entry(se, it->ino, it->name, strlen(it->name));
	} else {
		r = fuse_lowlevel_notify_inval_inode(se, it->ino, 0, 0);
	}
	/* ENOENT: the kernel does not know the node or name; nothing was cached */
	if (r < 0 && r != -ENOENT && r != -ENOTDIR)
		log_debug("invalidation of node %llu%s%s: %s", (unsigned long long)it->ino,
			  it->name ? " entry " : "", it->name ? it->name : "", strerror(-r));
}

static void *worker(void *arg)
{
	struct fuse_session *se = arg;
	pthread_mutex_lock(&inval.lock);
	for (;;) {
		while (!inval.head && !inval.stop)
			pthread_cond_wait(&inval.wake, &inval.lock);
		if (!inval.head)
			break;
		struct inval_item *it = inval.head;
		inval.head = it->next;
		if (!inval.head)
			inval.tail = NULL;
		pthread_mutex_unlock(&inval.lock);
		send_one(se, it);
		size_t offered = it->data ? it->size : 0;
		free(it->data);
		free(it->name);
		free(it);
		pthread_mutex_lock(&inval.lock);
		inval.offer_bytes -= offered;
		inval.sent++;
		pthread_cond_broadcast(&inval.done);
	}
	pthread_mutex_unlock(&inval.lock);
	return NULL;
}

int inval_start(struct fuse_session *se)
{
	pthread_mutex_lock(&inval.lock);
	inval.se = se;
	inval.stop = false;
	int r = pthread_create(&inval.thread, NULL, worker, se);
	if (r != 0)
		inval.se = NULL;
	pthread_mutex_unlock(&inval.lock);
	return -r;
}

static void drop_queue_locked(void)
{
	while (inval.head) {
		struct inval_item *it = inval.head;
		inval.head = it->next;
		inval.offer_bytes -= it->data ? it->size : 0;
		free(it->data);
		free(it->name);
		free(it);
		inval.sent++;
	}
	inval.tail = NULL;
	pthread_cond_broadcast(&inval.done);
}

void inval_stop(void)
{
	pthread_mutex_lock(&inval.lock);
	if (!inval.se) {
		pthread_mutex_unlock(&inval.lock);
		return;
	}
	/* the session is ending: what is still queued would find no kernel */
	drop_queue_locked();
	inval.stop = true;
	inval.se = NULL;
	pthread_cond_broadcast(&inval.wake);
	pthread_mutex_unlock(&inval.lock);
	pthread_join(inval.thread, NULL);
}

static void append_locked(struct inval_item *it)
{
	if (inval.tail)
		inval.tail->next = it;
	else
		inval.head = it;
	inval.tail = it;
	inval.queued++;
	pthread_cond_signal(&inval.wake);
}

static void enqueue(fuse_ino_t ino, const char *name)
{
	struct inval_item *it = calloc(1, sizeof(*it));
	if (!it || (name && !(it->name = strdup(name)))) {
		free(it);
		log_err("out of memory: a kernel cache entry may stay stale until it times out");
		return;
	}
	it->ino = ino;
	pthread_mutex_lock(&inval.lock);
	if (!inval.se) {
		pthread_mutex_unlock(&inval.lock);
		free(it->name);
		free(it);
		return;
	}
	append_locked(it);
	pthread_mutex_unlock(&inval.lock);
}

void vn_cache_offer(struct vn_node *node, off_t offset, const void *data, size_t size)
{
	struct inval_item *it = calloc(1, sizeof(*it));
	if (!it || !(it->data = malloc(size))) {
		free(it);
		return;
	}
	memcpy(it->data, data, size);
	it->ino = ino_of(node);
	it->offset = offset;
	it->size = size;
	pthread_mutex_lock(&inval.lock);
	if (!inval.se || inval.offer_bytes + size > OFFER_QUEUE_MAX) {
		pthread_mutex_unlock(&inval.lock);
		free(it->data);
		free(it);
		return;
	}
	inval.offer_bytes += size;
	append_locked(it);
	pthread_mutex_unlock(&inval.lock);
}

void vn_invalidate_entry(struct vn_node *parent, const char *name)
{
	enqueue(ino_of(parent), name);
}

void vn_invalidate_node(struct vn_node *node)
{
	enqueue(ino_of(node), NULL);
}

void vn_invalidate_flush(void)
{
	pthread_mutex_lock(&inval.lock);
	uint64_t target = inval.queued;
	while (inval.sent < target && inval.se)
		pthread_cond_wait(&inval.done, &inval.lock);
	pthread_mutex_unlock(&inval.lock);
}
