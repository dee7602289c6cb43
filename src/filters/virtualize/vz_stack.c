/*
 * Layer stacks of directories: what each covering layer holds at one
 * directory of the view, as that layer's own handle (an image's inode
 * reference, a directory source's path inside the source), or the next
 * component on the way to the layer's attach point.  A child's stack
 * comes from its parent's with one lookup per covering layer, so no view
 * path is built or walked, and depth costs nothing.
 *
 * Stacks are immutable once built and carry the generation they were
 * built for; vz_gen_bump() makes all of them stale at once (attach,
 * detach, a rename that moves a covered directory).  This file knows
 * nothing of nodes: vz_nodes.c keeps a stack per directory node.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hash.h"
#include "filters/virtualize/vz_internal.h"

/* Key of the synthesized directories' inode numbers (any fixed value). */
#define SYNTH_KEY 0x73796e7468646972ULL

static uint64_t generation = 1;	/* atomic */

uint64_t vz_gen_current(void)
{
	return __atomic_load_n(&generation, __ATOMIC_ACQUIRE);
}

void vz_gen_bump(void)
{
	__atomic_add_fetch(&generation, 1, __ATOMIC_ACQ_REL);
}

/* The number of the synthesized directory at the first LEN bytes of view path PATH. */
static uint64_t synth_ino(const char *path, size_t len)
{
	return vn_virtual_ino(SYNTH_KEY, fnv1a(FNV1A_INIT, path, len) & ((1ULL << 47) - 1));
}

void vz_hit_clear(struct vz_hit *h)
{
	free(h->rel);
	h->rel = NULL;
	vz_layer_put(h->layer);
	h->layer = NULL;
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

/* A directory synthesized at the first LEN bytes of L's attach point. */
static void synth_attr(const struct layer *l, size_t len, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)synth_ino(l->path, len);
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_mtim = l->root_st.st_mtim;
	st->st_ctim = l->root_st.st_mtim;
	st->st_atim = l->root_st.st_mtim;
	st->st_blksize = 4096;
}

static struct vz_stack *stack_alloc(size_t cap, uint64_t gen)
{
	struct vz_stack *s = calloc(1, sizeof(*s) + cap * sizeof(s->e[0]));
	if (s) {
		s->refs = 1;
		s->gen = gen;
	}
	return s;
}

void vz_stack_get(struct vz_stack *s)
{
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void vz_stack_put(struct vz_stack *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->e[i].rel);
		vz_layer_put(s->e[i].layer);
	}
	free(s);
}

/* Appends an entry; takes a reference on L and ownership of REL. */
static void stack_push(struct vz_stack *s, struct layer *l, uint64_t ref, char *rel, size_t way)
{
	vz_layer_get(l);
	s->e[s->n++] = (struct vz_entry){ .layer = l, .ref = ref, .rel = rel, .way = way };
}

int vz_stack_empty(uint64_t gen, struct vz_stack **ret)
{
	*ret = stack_alloc(0, gen);
	return *ret ? 0 : -ENOMEM;
}

int vz_stack_root(struct layer_set *set, uint64_t gen, struct vz_stack **ret)
{
	struct vz_stack *s = stack_alloc(set ? set->n : 0, gen);
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; set && i < set->n; i++) {
		struct layer *l = set->layer[i];
		char *rel = NULL;
		if (l->path_len == 1 && source_kind(l->src) == SOURCE_DIRECTORY) {
			rel = strdup("");
			if (!rel) {
				vz_stack_put(s);
				return -ENOMEM;
			}
		}
		/* at "/" the layer's root; elsewhere the way starts after the first '/' */
		stack_push(s, l, l->root_ref, rel, l->path_len == 1 ? 0 : 1);
	}
	*ret = s;
	return 0;
}

/* Length of the component of L's attach point that starts at WAY. */
static size_t way_len(const struct layer *l, size_t way)
{
	return (size_t)(strchrnul(l->path + way, '/') - (l->path + way));
}

/* A directory source's path of NAME in directory REL; NULL for images. */
static int child_rel(const struct vz_entry *e, const char *name, char **ret)
{
	*ret = NULL;
	if (!e->rel)
		return 0;
	size_t dlen = strlen(e->rel), nlen = strlen(name);
	if (dlen + 1 + nlen >= PATH_MAX)
		return -ENAMETOOLONG;
	char *rel = malloc(dlen + 1 + nlen + 1);
	if (!rel)
		return -ENOMEM;
	if (dlen) {
		memcpy(rel, e->rel, dlen);
		rel[dlen++] = '/';
	}
	memcpy(rel + dlen, name, nlen + 1);
	*ret = rel;
	return 0;
}

/*
 * What entry E holds as NAME: 0 and the candidate (*ret_ref, *st as
 * stored or synthesized, *ret_way: 0 inside the layer, else the offset of
 * the next component on the way), -ENOENT, or an error of the source.
 */
static int entry_child(const struct vz_entry *e, const char *name, uint64_t *ret_ref,
		       struct stat *st, size_t *ret_way, bool *ret_synth)
{
	struct layer *l = e->layer;
	if (e->way) {
		size_t len = way_len(l, e->way);
		if (strlen(name) != len || memcmp(name, l->path + e->way, len) != 0)
			return -ENOENT;
		size_t end = e->way + len;
		*ret_synth = l->path[end] != '\0';
		if (*ret_synth) {
			synth_attr(l, end, st);
			*ret_way = end + 1;
		} else {
			*st = l->root_st;	/* the attach point itself: the layer's root */
			show_attr(l, st);
			*ret_way = 0;
		}
		*ret_ref = l->root_ref;
		return 0;
	}
	int r = source_lookup(l->src, e->ref, e->rel ? e->rel : "", name, ret_ref, st);
	if (r == -ENOTDIR)
		r = -ENOENT;
	if (r == 0) {
		show_attr(l, st);
		*ret_way = 0;
		*ret_synth = false;
	}
	return r;
}

/* Fills HIT from the winning candidate of entry E. */
static int fill_hit(const struct vz_entry *e, const char *name, uint64_t ref,
		    const struct stat *st, bool synth, struct vz_hit *hit)
{
	hit->layer = e->layer;
	vz_layer_get(hit->layer);
	hit->ref = ref;
	hit->st = *st;
	hit->synth = synth;
	hit->rel = NULL;
	if (synth)
		return 0;
	if (e->way) {
		hit->rel = strdup("");
		return hit->rel ? 0 : -ENOMEM;
	}
	/* images ignore rel: an empty one does, and costs no path */
	int r = e->rel ? child_rel(e, name, &hit->rel) : 0;
	if (r == 0 && !hit->rel)
		hit->rel = strdup("");
	return r < 0 ? r : hit->rel ? 0 : -ENOMEM;
}

/* Adds the directory candidate of E at NAME to the child stack C. */
static int push_child(struct vz_stack *c, const struct vz_entry *e, const char *name,
		      uint64_t ref, size_t way, bool synth)
{
	char *rel = NULL;
	if (!synth && source_kind(e->layer->src) == SOURCE_DIRECTORY) {
		int r = e->way ? ((rel = strdup("")) ? 0 : -ENOMEM) : child_rel(e, name, &rel);
		if (r < 0)
			return r;
	}
	stack_push(c, e->layer, ref, rel, synth ? way : 0);
	return 0;
}

int vz_stack_lookup(const struct vz_stack *p, const char *name, uint64_t gen, struct vz_hit *hit,
		    struct vz_stack **ret_child)
{
	struct vz_stack *c = NULL;
	if (ret_child && !(c = stack_alloc(p->n, gen)))
		return -ENOMEM;
	bool found = false;
	int r = 0;
	for (size_t i = 0; i < p->n; i++) {
		uint64_t ref;
		struct stat st;
		size_t way = 0;
		bool synth = false;
		r = entry_child(&p->e[i], name, &ref, &st, &way, &synth);
		if (r == -ENOENT) {
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		if (!found && hit)
			r = fill_hit(&p->e[i], name, ref, &st, synth, hit);
		found = true;
		if (r == 0 && c && S_ISDIR(st.st_mode))
			r = push_child(c, &p->e[i], name, ref, way, synth);
		if (r < 0 || !c)
			break;	/* without a child stack to fill, the first candidate is all */
	}
	if (r < 0) {
		if (found && hit)
			vz_hit_clear(hit);
		vz_stack_put(c);
		return r;
	}
	if (ret_child)
		*ret_child = c;
	return found ? 0 : -ENOENT;
}

bool vz_stack_equal(const struct vz_stack *a, const struct vz_stack *b)
{
	size_t an = a ? a->n : 0, bn = b ? b->n : 0;
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++) {
		const struct vz_entry *x = &a->e[i], *y = &b->e[i];
		if (x->layer != y->layer || x->way != y->way || x->ref != y->ref ||
		    !x->rel != !y->rel || (x->rel && strcmp(x->rel, y->rel) != 0))
			return false;
	}
	return true;
}

/* ---- listings ---- */

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

static int list_entry(struct list_ctx *c, const struct vz_entry *e)
{
	struct layer *l = e->layer;
	if (!e->way) {
		c->layer = l;
		return source_readdir(l->src, e->ref, e->rel ? e->rel : "", emit_source_entry, c);
	}
	char name[NAME_MAX + 1];
	size_t len = way_len(l, e->way);
	if (len > NAME_MAX)
		return 0;
	memcpy(name, l->path + e->way, len);
	name[len] = '\0';
	return emit(c, name, synth_ino(l->path, e->way + len), S_IFDIR);
}

int vz_stack_list(const struct vz_stack *s, const struct vz_names *skip, vz_name_fn *fn,
		  void *arg)
{
	struct list_ctx c = { .skip = skip, .fn = fn, .arg = arg };
	int r = 0;
	for (size_t i = 0; s && i < s->n && r == 0; i++)
		r = list_entry(&c, &s->e[i]);
	vz_names_free(&c.seen);
	return r;
}
