/* Node table and bounded descriptor cache; see node_table.h for the rules. */
#include "core/node_table.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "core/filter_manager.h"
#include "core/inode_map.h"

struct node_table {
	pthread_mutex_t lock;		/* protects all node fields marked so in objects.h */
	struct vn_node **buckets;
	size_t nbuckets;
	size_t nnodes;
	struct vn_node root;
	struct vn_node lru;		/* list head: lru.lru_next is the most recently used */
	size_t nfds;			/* descriptors in the LRU */
	size_t fd_cap;
	struct inode_map *imap;
	node_free_fn *on_free;
	void *on_free_arg;
};

static size_t bucket_of(dev_t dev, ino_t ino, size_t n)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ULL ^ (uint64_t)dev * 0xC2B2AE3D27D4EB4FULL;
	return (size_t)(h >> 20) & (n - 1);
}

int node_table_new(int root_fd, size_t fd_cap, struct inode_map *imap, node_free_fn *on_free,
		   void *on_free_arg, struct node_table **ret_table)
{
	struct stat st;
	if (fstat(root_fd, &st) < 0)
		return -errno;
	struct node_table *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->nbuckets = 4096;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->buckets) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	t->fd_cap = fd_cap < 16 ? 16 : fd_cap;
	t->imap = imap;
	t->on_free = on_free;
	t->on_free_arg = on_free_arg;
	t->lru.lru_next = t->lru.lru_prev = &t->lru;
	t->root.dev = st.st_dev;
	t->root.ino = st.st_ino;
	t->root.st_ino = inode_map_get(imap, st.st_dev, st.st_ino);
	t->root.mode = st.st_mode;
	t->root.nlookup = 1;
	t->root.fd = root_fd;
	t->root.pinned = true;
	*ret_table = t;
	return 0;
}

static void node_destroy(struct node_table *t, struct vn_node *n)
{
	if (t->on_free)
		t->on_free(n, t->on_free_arg);
	if (n->fd >= 0)
		close(n->fd);
	free(n->name);
	free(n);
}

void node_table_free(struct node_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct vn_node *n = t->buckets[i];
		while (n) {
			struct vn_node *next = n->hash_next;
			node_destroy(t, n);
			n = next;
		}
	}
	if (t->on_free)
		t->on_free(&t->root, t->on_free_arg);
	if (t->root.fd >= 0)
		close(t->root.fd);
	free(t->buckets);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void node_table_each(struct node_table *t, void (*fn)(struct vn_node *node, void *arg), void *arg)
{
	pthread_mutex_lock(&t->lock);
	fn(&t->root, arg);
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct vn_node *n = t->buckets[i]; n; n = n->hash_next)
			fn(n, arg);
	pthread_mutex_unlock(&t->lock);
}

struct vn_node *node_table_root(struct node_table *t)
{
	return &t->root;
}

struct inode_map *node_table_inode_map(struct node_table *t)
{
	return t->imap;
}

/* ---- LRU of cached descriptors (all under t->lock) ---- */

static void lru_remove(struct vn_node *n)
{
	if (!n->lru_next)
		return;
	n->lru_prev->lru_next = n->lru_next;
	n->lru_next->lru_prev = n->lru_prev;
	n->lru_next = n->lru_prev = NULL;
}

static void lru_push(struct node_table *t, struct vn_node *n)
{
	n->lru_next = t->lru.lru_next;
	n->lru_prev = &t->lru;
	t->lru.lru_next->lru_prev = n;
	t->lru.lru_next = n;
}

/* Takes descriptors beyond the cap out of idle nodes; returns how many went to out[]. */
static size_t lru_evict(struct node_table *t, int *out, size_t max)
{
	size_t k = 0;
	struct vn_node *n = t->lru.lru_prev;
	while (t->nfds > t->fd_cap && n != &t->lru && k < max) {
		struct vn_node *prev = n->lru_prev;
		if (n->fd_users == 0) {
			lru_remove(n);
			out[k++] = n->fd;
			n->fd = -1;
			t->nfds--;
		}
		n = prev;
	}
	return k;
}

/* ---- hash (under t->lock) ---- */

static struct vn_node *hash_find(struct node_table *t, dev_t dev, ino_t ino)
{
	if (dev == t->root.dev && ino == t->root.ino)
		return &t->root;
	for (struct vn_node *n = t->buckets[bucket_of(dev, ino, t->nbuckets)]; n; n = n->hash_next)
		if (n->ino == ino && n->dev == dev)
			return n;
	return NULL;
}

static void hash_grow(struct node_table *t)
{
	size_t nb = t->nbuckets * 2;
	struct vn_node **b = calloc(nb, sizeof(*b));
	if (!b)
		return;	/* keep the longer chains */
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct vn_node *n = t->buckets[i];
		while (n) {
			struct vn_node *next = n->hash_next;
			size_t k = bucket_of(n->dev, n->ino, nb);
			n->hash_next = b[k];
			b[k] = n;
			n = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = nb;
}

static void hash_remove(struct node_table *t, struct vn_node *n)
{
	struct vn_node **p = &t->buckets[bucket_of(n->dev, n->ino, t->nbuckets)];
	while (*p && *p != n)
		p = &(*p)->hash_next;
	if (*p)
		*p = n->hash_next;
	t->nnodes--;
}

/*
 * Drops one reference and unlinks every node that becomes unused (walking
 * up the parent chain); the caller destroys them after unlocking.
 */
static struct vn_node *release_locked(struct node_table *t, struct vn_node *n, struct vn_node *dead)
{
	while (n && n != &t->root && n->nlookup == 0 && n->refcount == 0) {
		struct vn_node *parent = n->parent;
		hash_remove(t, n);
		lru_remove(n);
		if (n->fd >= 0 && !n->pinned)
			t->nfds--;
		n->parent = NULL;
		n->hash_next = dead;
		dead = n;
		if (!parent)
			break;
		if (parent->refcount == 0) {
			log_err("BUG: refcount underflow on inode %llu", (unsigned long long)parent->ino);
			abort();
		}
		parent->refcount--;
		n = parent;
	}
	return dead;
}

static void destroy_list(struct node_table *t, struct vn_node *dead)
{
	while (dead) {
		struct vn_node *next = dead->hash_next;
		node_destroy(t, dead);
		dead = next;
	}
}

/* Sets parent and name (under t->lock); returns the old parent to unref, or NULL. */
static struct vn_node *set_name_locked(struct vn_node *n, struct vn_node *parent, char *name)
{
	struct vn_node *old = n->parent;
	free(n->name);
	n->name = name;
	n->parent = parent;
	parent->refcount++;
	return old;
}

/*
 * Finds or creates the node (dev, ino), names it PARENT/NAME and adds one
 * kernel lookup.  fd: see node_table_lookup.
 */
static int lookup_identity(struct node_table *t, struct vn_node *parent, const char *name,
			   dev_t dev, ino_t ino, uint64_t st_ino, mode_t mode,
			   struct vn_filter *owner, int fd, struct vn_node **ret_node)
{
	char *copy = strdup(name);
	struct vn_node *fresh = calloc(1, sizeof(*fresh));
	if (!copy || !fresh) {
		free(copy);
		free(fresh);
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	struct vn_node *old_parent = NULL;
	pthread_mutex_lock(&t->lock);
	struct vn_node *n = hash_find(t, dev, ino);
	if (n) {
		if (n != &t->root && (n->parent != parent || !n->name || strcmp(n->name, name))) {
			old_parent = set_name_locked(n, parent, copy);
			copy = NULL;
			if (n->pinned && n->fd >= 0) {
				/* reachable by name again: the descriptor may be evicted */
				n->pinned = false;
				lru_push(t, n);
				t->nfds++;
			}
		}
	} else {
		n = fresh;
		fresh = NULL;
		n->dev = dev;
		n->ino = ino;
		n->st_ino = st_ino;
		n->owner = owner;
		n->fd = -1;
		set_name_locked(n, parent, copy);
		copy = NULL;
		size_t k = bucket_of(n->dev, n->ino, t->nbuckets);
		n->hash_next = t->buckets[k];
		t->buckets[k] = n;
		if (++t->nnodes > t->nbuckets)
			hash_grow(t);
	}
	n->mode = mode;
	n->nlookup++;
	int evicted[9];
	size_t nevicted = 0;
	if (fd >= 0 && n->fd < 0 && !n->pinned) {
		n->fd = fd;
		lru_push(t, n);
		t->nfds++;
		nevicted = lru_evict(t, evicted, 8);
	} else if (fd >= 0) {
		evicted[nevicted++] = fd;
	}
	struct vn_node *dead = NULL;
	if (old_parent) {
		old_parent->refcount--;
		dead = release_locked(t, old_parent, NULL);
	}
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < nevicted; i++)
		close(evicted[i]);
	destroy_list(t, dead);
	free(copy);
	free(fresh);
	*ret_node = n;
	return 0;
}

int node_table_lookup(struct node_table *t, struct vn_node *parent, const char *name,
		      const struct stat *st, int fd, struct vn_node **ret_node)
{
	uint64_t st_ino = inode_map_get(t->imap, st->st_dev, st->st_ino);
	return lookup_identity(t, parent, name, st->st_dev, st->st_ino, st_ino, st->st_mode, NULL,
			       fd, ret_node);
}

int node_table_lookup_virtual(struct node_table *t, struct vn_filter *owner,
			      struct vn_node *parent, const char *name, uint64_t st_ino,
			      mode_t mode, struct vn_node **ret_node)
{
	return lookup_identity(t, parent, name, NODE_VIRTUAL_DEV, (ino_t)st_ino, st_ino, mode,
			       owner, -1, ret_node);
}

void node_table_forget(struct node_table *t, struct vn_node *n, uint64_t count)
{
	if (n == &t->root)
		return;
	pthread_mutex_lock(&t->lock);
	if (n->nlookup < count) {
		log_err("BUG: nlookup underflow on inode %llu", (unsigned long long)n->ino);
		abort();
	}
	n->nlookup -= count;
	struct vn_node *dead = release_locked(t, n, NULL);
	pthread_mutex_unlock(&t->lock);
	destroy_list(t, dead);
}

uint64_t node_table_lookups(struct node_table *t, struct vn_node *n)
{
	pthread_mutex_lock(&t->lock);
	uint64_t count = n->nlookup;
	pthread_mutex_unlock(&t->lock);
	return count;
}

struct vn_node *node_table_find(struct node_table *t, dev_t dev, ino_t ino)
{
	pthread_mutex_lock(&t->lock);
	struct vn_node *n = hash_find(t, dev, ino);
	if (n)
		n->refcount++;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void node_ref(struct node_table *t, struct vn_node *n)
{
	pthread_mutex_lock(&t->lock);
	n->refcount++;
	pthread_mutex_unlock(&t->lock);
}

void node_unref(struct node_table *t, struct vn_node *n)
{
	if (!n || n == &t->root)
		return;
	pthread_mutex_lock(&t->lock);
	if (n->refcount == 0) {
		log_err("BUG: refcount underflow on inode %llu", (unsigned long long)n->ino);
		abort();
	}
	n->refcount--;
	struct vn_node *dead = release_locked(t, n, NULL);
	pthread_mutex_unlock(&t->lock);
	destroy_list(t, dead);
}

static int reopen_by_name(struct node_table *t, struct vn_node *n, int *ret_fd)
{
	pthread_mutex_lock(&t->lock);
	struct vn_node *parent = n->parent;
	char *name = n->name ? strdup(n->name) : NULL;
	if (parent)
		parent->refcount++;
	pthread_mutex_unlock(&t->lock);
	if (!parent || !name) {
		free(name);
		node_unref(t, parent);
		return -ESTALE;
	}
	int pfd;
	int r = node_fd_get(t, parent, &pfd);
	if (r == 0) {
		int fd = node_table_openat(t, pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
		r = fd < 0 ? -errno : 0;
		node_fd_put(t, parent);
		struct stat st;
		if (r == 0 && (fstat(fd, &st) < 0 || st.st_ino != n->ino || st.st_dev != n->dev)) {
			close(fd);
			r = -ESTALE;
		}
		if (r == -ENOENT)
			r = -ESTALE;
		if (r == 0)
			*ret_fd = fd;
	}
	free(name);
	node_unref(t, parent);
	return r;
}

int node_fd_get(struct node_table *t, struct vn_node *n, int *ret_fd)
{
	pthread_mutex_lock(&t->lock);
	if (n->fd >= 0) {
		n->fd_users++;
		if (n->lru_next) {
			lru_remove(n);
			lru_push(t, n);
		}
		*ret_fd = n->fd;
		pthread_mutex_unlock(&t->lock);
		return 0;
	}
	pthread_mutex_unlock(&t->lock);

	int fd = -1;
	int r = reopen_by_name(t, n, &fd);
	if (r < 0)
		return r;
	int evicted[8];
	size_t nevicted = 0;
	pthread_mutex_lock(&t->lock);
	if (n->fd >= 0) {
		evicted[nevicted++] = fd;	/* another thread won the race */
	} else {
		n->fd = fd;
		if (!n->pinned) {
			lru_push(t, n);
			t->nfds++;
		}
	}
	n->fd_users++;
	*ret_fd = n->fd;
	nevicted += lru_evict(t, evicted + nevicted, 8 - nevicted);
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < nevicted; i++)
		close(evicted[i]);
	return 0;
}

void node_fd_put(struct node_table *t, struct vn_node *n)
{
	pthread_mutex_lock(&t->lock);
	n->fd_users--;
	pthread_mutex_unlock(&t->lock);
}

int node_table_stat(struct node_table *t, struct vn_node *n, struct stat *st)
{
	char name[NAME_MAX + 1] = "";
	int flags = AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW;
	pthread_mutex_lock(&t->lock);
	struct vn_node *held = n;	/* whose descriptor the stat goes through */
	if (n->fd < 0) {
		struct vn_node *parent = n->parent;
		if (!parent || parent->fd < 0 || !n->name || strlen(n->name) > NAME_MAX) {
			pthread_mutex_unlock(&t->lock);
			return -EAGAIN;
		}
		strcpy(name, n->name);
		flags = AT_SYMLINK_NOFOLLOW;
		held = parent;
		parent->refcount++;	/* the caller's reference on n does not keep its parent */
	}
	/* fd_users keeps the descriptor from eviction; used: as recent as node_fd_get() makes it */
	held->fd_users++;
	if (held->lru_next) {
		lru_remove(held);
		lru_push(t, held);
	}
	int fd = held->fd;
	pthread_mutex_unlock(&t->lock);

	int r = fstatat(fd, name, st, flags) < 0 ? -errno : 0;
	if (held != n && (r < 0 || st->st_dev != n->dev || st->st_ino != n->ino))
		r = -EAGAIN;	/* the name no longer holds the node: the reopen decides */
	node_fd_put(t, held);
	if (held != n)
		node_unref(t, held);
	return r;
}

void node_table_set_name(struct node_table *t, struct vn_node *n, struct vn_node *parent,
			 const char *name)
{
	char *copy = strdup(name);
	if (!copy)
		return;	/* keeps the old name: a later reopen fails with ESTALE, never wrong data */
	pthread_mutex_lock(&t->lock);
	struct vn_node *old = set_name_locked(n, parent, copy);
	struct vn_node *dead = NULL;
	if (old) {
		old->refcount--;
		dead = release_locked(t, old, NULL);
	}
	pthread_mutex_unlock(&t->lock);
	destroy_list(t, dead);
}

int node_table_pin(struct node_table *t, struct vn_node *n)
{
	int fd = -1;
	int r = node_fd_get(t, n, &fd);
	if (r < 0)
		return r;
	pthread_mutex_lock(&t->lock);
	if (!n->pinned) {
		n->pinned = true;
		if (n->lru_next) {
			lru_remove(n);
			t->nfds--;
		}
	}
	n->fd_users--;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void node_table_unpin(struct node_table *t, struct vn_node *n)
{
	pthread_mutex_lock(&t->lock);
	if (n->pinned && n->name && n->parent && n->fd >= 0) {
		n->pinned = false;
		lru_push(t, n);
		t->nfds++;
	}
	pthread_mutex_unlock(&t->lock);
}

void node_table_clear_name(struct node_table *t, struct vn_node *n)
{
	pthread_mutex_lock(&t->lock);
	struct vn_node *old = n->parent;
	free(n->name);
	n->name = NULL;
	n->parent = NULL;
	struct vn_node *dead = NULL;
	if (old) {
		old->refcount--;
		dead = release_locked(t, old, NULL);
	}
	pthread_mutex_unlock(&t->lock);
	destroy_list(t, dead);
}

int node_table_parent_name(struct node_table *t, struct vn_node *n, struct vn_node **ret_parent,
			   char *name)
{
	int r = -ESTALE;
	pthread_mutex_lock(&t->lock);
	if (n->parent && n->name && strlen(n->name) <= NAME_MAX) {
		strcpy(name, n->name);
		n->parent->refcount++;
		*ret_parent = n->parent;
		r = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

void node_table_set_mode(struct node_table *t, struct vn_node *n, mode_t mode)
{
	pthread_mutex_lock(&t->lock);
	n->mode = mode;
	pthread_mutex_unlock(&t->lock);
}

/* Closes a quarter of the cached descriptors (at least 16) that no caller is using. */
static void make_room(struct node_table *t)
{
	int fds[256];
	pthread_mutex_lock(&t->lock);
	size_t share = t->nfds / 4 < 16 ? 16 : t->nfds / 4;
	size_t target = t->nfds > share ? t->nfds - share : 0;
	pthread_mutex_unlock(&t->lock);
	size_t n;
	do {
		pthread_mutex_lock(&t->lock);
		/* lru_evict closes what lies beyond the cap: lower it for the pass */
		size_t cap = t->fd_cap;
		t->fd_cap = target;
		n = lru_evict(t, fds, sizeof(fds) / sizeof(fds[0]));
		t->fd_cap = cap;
		pthread_mutex_unlock(&t->lock);
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
	} while (n == sizeof(fds) / sizeof(fds[0]));
}

int node_table_openat(struct node_table *t, int dirfd, const char *path, int flags, mode_t mode)
{
	int fd = openat(dirfd, path, flags, mode);
	if (fd >= 0 || errno != EMFILE)
		return fd;
	make_room(t);
	return openat(dirfd, path, flags, mode);
}

size_t node_table_fds_cached(struct node_table *t)
{
	pthread_mutex_lock(&t->lock);
	size_t n = t->nfds;
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* The one table of this process, for the filter API's path service. */
static struct node_table *path_table;

void node_table_publish(struct node_table *t)
{
	path_table = t;
}

int vn_node_path(const struct vn_node *node, char *buf, size_t size)
{
	struct node_table *t = path_table;
	if (!t || size < 2)
		return -ENAMETOOLONG;
	size_t pos = size - 1;
	int r = 0;
	buf[pos] = '\0';
	pthread_mutex_lock(&t->lock);
	for (const struct vn_node *n = node; n != &t->root; n = n->parent) {
		if (!n->name || !n->parent) {
			r = -ENOENT;
			break;
		}
		size_t len = strlen(n->name);
		if (len + 1 > pos) {
			r = -ENAMETOOLONG;
			break;
		}
		pos -= len;
		memcpy(buf + pos, n->name, len);
		buf[--pos] = '/';
	}
	pthread_mutex_unlock(&t->lock);
	if (r < 0)
		return r;
	if (pos == size - 1)
		buf[--pos] = '/';
	size_t len = size - 1 - pos;
	memmove(buf, buf + pos, len + 1);
	return (int)len;
}

struct vn_node *vn_node_parent(struct vn_node *node, char *name, size_t size)
{
	struct node_table *t = path_table;
	struct vn_node *parent = NULL;
	pthread_mutex_lock(&t->lock);
	if (node != &t->root && node->parent && node->name && strlen(node->name) < size) {
		parent = node->parent;
		parent->refcount++;
		strcpy(name, node->name);
	}
	pthread_mutex_unlock(&t->lock);
	return parent;
}

bool vn_node_tryref(struct vn_node *node)
{
	struct node_table *t = path_table;
	pthread_mutex_lock(&t->lock);
	/* both counts at zero: release_locked() already unlinked it to be freed */
	bool alive = node == &t->root || node->nlookup > 0 || node->refcount > 0;
	if (alive)
		node->refcount++;
	pthread_mutex_unlock(&t->lock);
	return alive;
}

void vn_node_unref(struct vn_node *node)
{
	node_unref(path_table, node);
}

mode_t vn_node_mode(const struct vn_node *node)
{
	struct node_table *t = path_table;
	pthread_mutex_lock(&t->lock);
	mode_t m = node->mode;
	pthread_mutex_unlock(&t->lock);
	return m;
}

int vn_node_virtual(struct vn_filter *f, struct vn_node *parent, const char *name, uint64_t ino,
		    mode_t mode, struct vn_node **ret_node)
{
	/* its nodes would outlive it: such a filter is never unloaded */
	__atomic_store_n(&f->serves_virtual, true, __ATOMIC_RELEASE);
	return node_table_lookup_virtual(path_table, f, parent, name, ino, mode, ret_node);
}

struct vn_filter *vn_node_owner(const struct vn_node *node)
{
	return node->owner;
}

uint64_t vn_virtual_ino(uint64_t key, uint64_t ino)
{
	return inode_map_get_source(path_table->imap, key, ino);
}

struct vn_node *vn_root_node(void)
{
	return &path_table->root;
}
