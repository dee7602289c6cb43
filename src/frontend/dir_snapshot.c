#include "frontend/dir_snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "core/objects.h"

static off_t name_offset(const char *name)
{
	if (strcmp(name, ".") == 0)
		return 1;
	if (strcmp(name, "..") == 0)
		return 2;
	return (off_t)(fnv1a_str(name) >> 2) + 3;
}

struct keyed {
	off_t off;
	struct vn_dirent e;
};

static int by_offset(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return strcmp(x->e.name, y->e.name);
}

struct dir_snapshot *dir_snapshot_new(struct vn_dirlist *list)
{
	size_t n = list->count;
	struct dir_snapshot *s = calloc(1, sizeof(*s));
	struct keyed *k = malloc((n ? n : 1) * sizeof(*k));
	off_t *offs = malloc((n ? n : 1) * sizeof(*offs));
	if (!s || !k || !offs) {
		free(s);
		free(k);
		free(offs);
		dirlist_free(list);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		k[i] = (struct keyed){ name_offset(list->entries[i].name), list->entries[i] };
	qsort(k, n, sizeof(*k), by_offset);
	for (size_t i = 0; i < n; i++) {
		/* a collision: the later name takes the next free offset */
		if (i > 0 && k[i].off <= offs[i - 1])
			k[i].off = offs[i - 1] + 1;
		offs[i] = k[i].off;
		list->entries[i] = k[i].e;
	}
	free(k);
	s->refs = 1;
	s->list = list;
	s->offs = offs;
	return s;
}

struct dir_snapshot *dir_snapshot_get(struct dir_snapshot *s)
{
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

void dir_snapshot_put(struct dir_snapshot *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	dirlist_free(s->list);
	free(s->offs);
	free(s);
}

size_t dir_snapshot_seek(const struct dir_snapshot *s, off_t off)
{
	size_t lo = 0, hi = s->list->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->offs[mid] <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}
