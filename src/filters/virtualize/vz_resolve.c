/*
 * Paths inside one layer, walked from its root, for the control side only
 * (attach, detach and status, whose input is a path), and the name sets
 * that merged listings use.  Requests never walk paths: they resolve by
 * node, through the layer stacks of vz_stack.c.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hash.h"
#include "common/log.h"
#include "filters/virtualize/vz_internal.h"

/* REL inside layer L: its ref and stored attributes. */
int vz_layer_walk(struct layer *l, const char *rel, uint64_t *ret_ref, struct stat *st)
{
	*ret_ref = l->root_ref;
	*st = l->root_st;
	if (!*rel)
		return 0;
	char buf[PATH_MAX];
	size_t len = strlen(rel);
	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, rel, len + 1);
	char *comp = buf;
	for (;;) {
		char *slash = strchr(comp, '/');
		if (slash)
			*slash = '\0';
		if (!S_ISDIR(st->st_mode))
			return -ENOENT;
		/* the directory's own rel is buf up to the component */
		char saved = '\0';
		if (comp != buf) {
			saved = comp[-1];
			comp[-1] = '\0';
		}
		uint64_t ref;
		int r = source_lookup(l->src, *ret_ref, comp == buf ? "" : buf, comp, &ref, st);
		if (comp != buf)
			comp[-1] = saved;
		if (r == -ENOTDIR)
			r = -ENOENT;
		if (r < 0)
			return r;
		*ret_ref = ref;
		if (!slash)
			return 0;
		*slash = '/';
		comp = slash + 1;
	}
}

/* ---- sets of names ---- */


bool vz_names_has(const struct vz_names *ns, const char *name)
{
	if (!ns->cap)
		return false;
	for (size_t i = fnv1a_str(name) & (ns->cap - 1);; i = (i + 1) & (ns->cap - 1)) {
		if (!ns->slot[i])
			return false;
		if (!strcmp(ns->slot[i], name))
			return true;
	}
}

int vz_names_add(struct vz_names *ns, const char *name)
{
	if ((ns->n + 1) * 2 > ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 64;
		char **slot = calloc(cap, sizeof(*slot));
		if (!slot)
			return -ENOMEM;
		for (size_t i = 0; i < ns->cap; i++) {
			if (!ns->slot[i])
				continue;
			size_t k = fnv1a_str(ns->slot[i]) & (cap - 1);
			while (slot[k])
				k = (k + 1) & (cap - 1);
			slot[k] = ns->slot[i];
		}
		free(ns->slot);
		ns->slot = slot;
		ns->cap = cap;
	}
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	size_t k = fnv1a_str(name) & (ns->cap - 1);
	while (ns->slot[k])
		k = (k + 1) & (ns->cap - 1);
	ns->slot[k] = copy;
	ns->n++;
	return 0;
}

void vz_names_free(struct vz_names *ns)
{
	for (size_t i = 0; i < ns->cap; i++)
		free(ns->slot[i]);
	free(ns->slot);
}
