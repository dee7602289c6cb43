/*
 * The layer table: immutable sets replaced whole on attach and detach.
 * Readers take the current set with a reference under set_lock (a leaf,
 * held for a few instructions); writers are serialized by the caller
 * (vz_admin.c's admin_lock).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "filters/virtualize/vz_internal.h"

static pthread_mutex_t set_lock = PTHREAD_MUTEX_INITIALIZER;
static struct layer_set *current;	/* NULL: no layer */
static uint64_t next_id = 1;

void vz_layer_get(struct layer *l)
{
	__atomic_add_fetch(&l->refs, 1, __ATOMIC_RELAXED);
}

void vz_layer_put(struct layer *l)
{
	if (!l || __atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	source_put(l->src);
	free(l->source_path);
	free(l->path);
	free(l);
}

struct layer_set *vz_set_get(void)
{
	pthread_mutex_lock(&set_lock);
	struct layer_set *s = current;
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&set_lock);
	return s;
}

void vz_set_put(struct layer_set *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < s->n; i++)
		vz_layer_put(s->layer[i]);
	free(s);
}

bool vz_set_empty(void)
{
	return __atomic_load_n(&current, __ATOMIC_RELAXED) == NULL;
}

/* A new set holding BASE's layers minus SKIP, plus ADD first; NULL layers allowed. */
static struct layer_set *set_build(const struct layer_set *base, struct layer *add,
				   const struct layer *skip)
{
	size_t n = (base ? base->n : 0) + 1;
	struct layer_set *s = calloc(1, sizeof(*s) + n * sizeof(s->layer[0]));
	if (!s)
		return NULL;
	s->refs = 1;
	if (add) {
		s->layer[s->n++] = add;
		vz_layer_get(add);
	}
	for (size_t i = 0; base && i < base->n; i++) {
		if (base->layer[i] == skip)
			continue;
		s->layer[s->n++] = base->layer[i];
		vz_layer_get(base->layer[i]);
	}
	return s;
}

static void publish(struct layer_set *s)
{
	if (s && s->n == 0) {
		vz_set_put(s);
		s = NULL;
	}
	pthread_mutex_lock(&set_lock);
	struct layer_set *old = current;
	__atomic_store_n(&current, s, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&set_lock);
	/* after the swap: a stack labelled with the new generation saw the new set */
	vz_gen_bump();
	vz_set_put(old);
}

/*
 * The identity behind the layer's inode numbers: the source's and the
 * attach point's, so the same image at two places shows two sets of
 * objects, and the same image at the same place the same numbers again.
 */
static uint64_t layer_key(const struct source *src, const char *path)
{
	return fnv1a(source_key(src), path, strlen(path));
}

int vz_layers_add(struct source *src, const char *source_path, const char *path,
		  struct layer **ret)
{
	struct layer *l = calloc(1, sizeof(*l));
	if (!l)
		goto nomem;
	l->source_path = strdup(source_path);
	l->path = strdup(path);
	if (!l->source_path || !l->path)
		goto nomem;
	l->path_len = strlen(path);
	int r = source_root(src, &l->root_ref, &l->root_st);
	if (r < 0) {
		free(l->source_path);
		free(l->path);
		free(l);
		return r;
	}
	if (!S_ISDIR(l->root_st.st_mode)) {
		free(l->source_path);
		free(l->path);
		free(l);
		return -ENOTDIR;
	}
	l->src = src;
	l->key = layer_key(src, path);
	l->refs = 1;	/* the caller's */
	l->id = next_id++;
	struct layer_set *base = vz_set_get();
	struct layer_set *s = set_build(base, l, NULL);
	vz_set_put(base);
	if (!s) {
		l->src = NULL;
		vz_layer_put(l);
		return -ENOMEM;
	}
	publish(s);
	*ret = l;
	return 0;
nomem:
	if (l) {
		free(l->source_path);
		free(l->path);
		free(l);
	}
	return -ENOMEM;
}

static struct layer *find_layer(const struct layer_set *s, const char *spec)
{
	char *end;
	unsigned long long id = strtoull(spec, &end, 10);
	bool by_id = spec[0] >= '0' && spec[0] <= '9' && *end == '\0';
	char norm[PATH_MAX];
	bool by_path = !by_id && vz_path_normalize(spec, norm, sizeof(norm)) == 0;
	for (size_t i = 0; s && i < s->n; i++) {
		struct layer *l = s->layer[i];
		if ((by_id && l->id == id) || (by_path && !strcmp(l->path, norm)))
			return l;
	}
	return NULL;
}

int vz_layers_remove(const char *spec, struct layer **ret)
{
	struct layer_set *base = vz_set_get();
	struct layer *l = find_layer(base, spec);
	if (!l) {
		vz_set_put(base);
		return -ENOENT;
	}
	struct layer_set *s = set_build(base, NULL, l);
	if (!s) {
		vz_set_put(base);
		return -ENOMEM;
	}
	vz_layer_get(l);
	__atomic_store_n(&l->detached, true, __ATOMIC_RELAXED);
	vz_set_put(base);
	publish(s);
	*ret = l;
	return 0;
}

void vz_layers_clear(void)
{
	publish(NULL);
}
