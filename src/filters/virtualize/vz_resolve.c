/*
 * What the layers show at a path of the view (DESIGN section 3): the
 * newest layer holding the path wins, directories of all layers merge,
 * and directories on the way to an attach point are synthesized.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hash.h"
#include "common/log.h"
#include "filters/virtualize/vz_internal.h"

/* Key of the synthesized directories' inode numbers (any fixed value). */
#define SYNTH_KEY 0x73796e7468646972ULL

void vz_hit_clear(struct vz_hit *h)
{
	free(h->rel);
	h->rel = NULL;
}

uint64_t vz_synth_ino(const char *path)
{
	return vn_virtual_ino(SYNTH_KEY, fnv1a_str(path) & ((1ULL << 47) - 1));
}

/*
 * Attributes as the view shows them: numbers unique in the mount, no
 * setuid/setgid (never honoured), device numbers withheld so an image's
 * device node opens nothing.
 */
static void show_attr(const struct layer *l, struct stat *st)
{
	st->st_ino = (ino_t)vn_virtual_ino(l->key, st->st_ino);
	st->st_mode &= ~(mode_t)(S_ISUID | S_ISGID);
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
		st->st_rdev = 0;
	st->st_dev = 0;
}

static void synth_attr(const struct layer *l, const char *path, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)vz_synth_ino(path);
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_mtim = l->root_st.st_mtim;
	st->st_ctim = l->root_st.st_mtim;
	st->st_atim = l->root_st.st_mtim;
	st->st_blksize = 4096;
}

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

/*
 * Where L holds PATH: from the parent's entry when the hint is for L (one
 * lookup), else walked from L's root.
 */
static int find_in_layer(struct layer *l, const char *rel, const struct vz_parent_hint *hint,
			 uint64_t *ref, struct stat *st)
{
	const char *slash = strrchr(rel, '/');
	size_t dirlen = slash ? (size_t)(slash - rel) : 0;
	/* the hint is stale when a real ancestor was renamed since */
	if (!hint || hint->layer != l || strlen(hint->rel) != dirlen ||
	    strncmp(hint->rel, rel, dirlen) != 0)
		return vz_layer_walk(l, rel, ref, st);
	const char *name = slash ? slash + 1 : rel;
	int r = source_lookup(l->src, hint->ref, hint->rel, name, ref, st);
	return r == -ENOTDIR ? -ENOENT : r;
}

/* What L holds at PATH: 0, -ENOENT, or an error of the source. */
static int layer_at(struct layer *l, const char *path, const struct vz_parent_hint *hint,
		    struct vz_hit *hit)
{
	const char *rel = vz_path_under(path, l->path, l->path_len);
	if (rel) {
		int r = find_in_layer(l, rel, *rel ? hint : NULL, &hit->ref, &hit->st);
		if (r < 0)
			return r;
		hit->rel = strdup(rel);
		if (!hit->rel)
			return -ENOMEM;
		hit->layer = l;
		hit->synth = false;
		show_attr(l, &hit->st);
		return 0;
	}
	size_t len;
	if (vz_path_next_component(path, l->path, &len)) {
		hit->layer = l;
		hit->rel = NULL;
		hit->synth = true;
		synth_attr(l, path, &hit->st);
		return 0;
	}
	return -ENOENT;
}

int vz_resolve(struct layer_set *set, const char *path, const struct vz_parent_hint *hint,
	       struct vz_hit *hit)
{
	memset(hit, 0, sizeof(*hit));
	for (size_t i = 0; set && i < set->n; i++) {
		int r = layer_at(set->layer[i], path, hint, hit);
		if (r != -ENOENT)
			return r;
	}
	return -ENOENT;
}

bool vz_set_covers(const struct layer_set *set, const char *path)
{
	size_t len;
	for (size_t i = 0; set && i < set->n; i++) {
		const struct layer *l = set->layer[i];
		if (vz_path_under(path, l->path, l->path_len) ||
		    vz_path_next_component(path, l->path, &len))
			return true;
	}
	return false;
}

/* ---- merged listings ---- */

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

struct list_ctx {
	struct vz_names seen;
	const struct layer *layer;
	const struct vz_names *skip;
	vz_name_fn *fn;
	void *arg;
};

static int emit(struct list_ctx *c, const char *name, uint64_t ino, mode_t type)
{
	if (vz_names_has(&c->seen, name) || (c->skip && vz_names_has(c->skip, name)))
		return 0;
	int r = vz_names_add(&c->seen, name);
	return r < 0 ? r : c->fn(c->arg, name, ino, type);
}

static int emit_source_entry(void *arg, const char *name, uint64_t ino, mode_t type)
{
	struct list_ctx *c = arg;
	return emit(c, name, vn_virtual_ino(c->layer->key, ino), type);
}

static int list_layer(struct list_ctx *c, struct layer *l, const char *path)
{
	const char *rel = vz_path_under(path, l->path, l->path_len);
	if (rel) {
		uint64_t ref;
		struct stat st;
		int r = vz_layer_walk(l, rel, &ref, &st);
		if (r == -ENOENT || (r == 0 && !S_ISDIR(st.st_mode)))
			return 0;
		if (r < 0)
			return r;
		c->layer = l;
		return source_readdir(l->src, ref, rel, emit_source_entry, c);
	}
	size_t len;
	const char *next = vz_path_next_component(path, l->path, &len);
	if (!next)
		return 0;
	char name[NAME_MAX + 1];
	memcpy(name, next, len);
	name[len] = '\0';
	char child[PATH_MAX];
	int r = vz_path_join(path, name, child, sizeof(child));
	return r < 0 ? r : emit(c, name, vz_synth_ino(child), S_IFDIR);
}

int vz_list(struct layer_set *set, const char *path, const struct vz_names *skip, vz_name_fn *fn,
	    void *arg)
{
	struct list_ctx c = { .skip = skip, .fn = fn, .arg = arg };
	int r = 0;
	for (size_t i = 0; set && i < set->n && r == 0; i++)
		r = list_layer(&c, set->layer[i], path);
	vz_names_free(&c.seen);
	return r;
}
