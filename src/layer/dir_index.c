/* Name indexes of directories; see dir_index.h. */
#include "layer/dir_index.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"

struct slot {
	char *name;			/* NULL: free */
	uint64_t ref;
};

struct dir_index {
	uint64_t dir;
	size_t n, cap;			/* cap: a power of two, at least 2n */
	struct slot *slots;
	struct dir_index *next;		/* in the cache's chain */
};

#define BUCKETS 256

struct dir_index_cache {
	pthread_mutex_t lock;		/* leaf */
	struct dir_index *bucket[BUCKETS];
	size_t names, max_names;
};

static struct dir_index **chain(struct dir_index_cache *c, uint64_t dir)
{
	return &c->bucket[(dir * 0x9E3779B97F4A7C15ULL) >> 56];
}

struct dir_index_cache *dir_index_cache_new(size_t max_names)
{
	struct dir_index_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	c->max_names = max_names;
	return c;
}

void dir_index_drop(struct dir_index *ix)
{
	if (!ix)
		return;
	for (size_t i = 0; i < ix->cap; i++)
		free(ix->slots[i].name);
	free(ix->slots);
	free(ix);
}

static void drop_all(struct dir_index_cache *c)
{
	for (size_t b = 0; b < BUCKETS; b++) {
		while (c->bucket[b]) {
			struct dir_index *next = c->bucket[b]->next;
			dir_index_drop(c->bucket[b]);
			c->bucket[b] = next;
		}
	}
	c->names = 0;
}

void dir_index_cache_free(struct dir_index_cache *c)
{
	if (!c)
		return;
	drop_all(c);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static struct slot *probe(const struct dir_index *ix, const char *name)
{
	for (size_t i = fnv1a_str(name) & (ix->cap - 1);; i = (i + 1) & (ix->cap - 1))
		if (!ix->slots[i].name || !strcmp(ix->slots[i].name, name))
			return &ix->slots[i];
}

int dir_index_lookup(struct dir_index_cache *c, uint64_t dir, const char *name, uint64_t *ret_ref)
{
	int r = -ENOENT;
	pthread_mutex_lock(&c->lock);
	for (struct dir_index *ix = *chain(c, dir); ix; ix = ix->next) {
		if (ix->dir != dir)
			continue;
		const struct slot *s = probe(ix, name);
		r = s->name != NULL;
		if (r)
			*ret_ref = s->ref;
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

struct dir_index *dir_index_new(void)
{
	struct dir_index *ix = calloc(1, sizeof(*ix));
	if (!ix)
		return NULL;
	ix->cap = 64;
	ix->slots = calloc(ix->cap, sizeof(*ix->slots));
	if (!ix->slots) {
		free(ix);
		return NULL;
	}
	return ix;
}

static int grow(struct dir_index *ix)
{
	size_t cap = ix->cap * 2;
	struct slot *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	struct dir_index old = *ix;
	ix->slots = slots;
	ix->cap = cap;
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].name)
			*probe(ix, old.slots[i].name) = old.slots[i];
	free(old.slots);
	return 0;
}

int dir_index_add(struct dir_index *ix, const char *name, uint64_t ref)
{
	if ((ix->n + 1) * 2 > ix->cap && grow(ix) < 0)
		return -ENOMEM;
	struct slot *s = probe(ix, name);
	if (s->name)			/* a name twice: keep the first, as a scan would */
		return 0;
	s->name = strdup(name);
	if (!s->name)
		return -ENOMEM;
	s->ref = ref;
	ix->n++;
	return 0;
}

size_t dir_index_size(const struct dir_index *ix)
{
	return ix->n;
}

void dir_index_publish(struct dir_index_cache *c, uint64_t dir, struct dir_index *ix)
{
	ix->dir = dir;
	pthread_mutex_lock(&c->lock);
	for (struct dir_index *o = *chain(c, dir); o; o = o->next) {
		if (o->dir == dir) {		/* another thread built it first */
			pthread_mutex_unlock(&c->lock);
			dir_index_drop(ix);
			return;
		}
	}
	if (ix->n > c->max_names) {
		pthread_mutex_unlock(&c->lock);
		dir_index_drop(ix);
		return;
	}
	if (c->names + ix->n > c->max_names)
		drop_all(c);
	struct dir_index **head = chain(c, dir);
	ix->next = *head;
	*head = ix;
	c->names += ix->n;
	pthread_mutex_unlock(&c->lock);
}
