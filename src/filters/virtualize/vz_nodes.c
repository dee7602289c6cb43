/*
 * Layer stacks kept per directory node, as overlayfs keeps a stack of
 * lower entries per dentry.  A node's stack is derived from its parent's
 * by one lookup per covering layer; after the generation changed (attach,
 * detach, a moved covered directory) it is rebuilt lazily, walking up the
 * node table's parent links only as far as the first ancestor whose stack
 * is current.  A stack holds references on its layers, so a detached
 * layer lives while a stack still names it.  No descriptor is kept here.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "filters/virtualize/vz_internal.h"

/* Guards each vz_node's stack pointer; a leaf, held to read or swap it and take a reference. */
static pthread_mutex_t stack_lock = PTHREAD_MUTEX_INITIALIZER;

static struct vz_node *context(struct vn_node *node)
{
	return vn_node_context(vz_filter(), node);
}

struct vz_stack *vz_node_cached_stack(struct vn_node *node)
{
	struct vz_node *c = context(node);
	if (!c)
		return NULL;
	pthread_mutex_lock(&stack_lock);
	struct vz_stack *s = c->stack;
	if (s)
		vz_stack_get(s);
	pthread_mutex_unlock(&stack_lock);
	return s;
}

void vz_node_set_stack(struct vn_node *node, struct vz_stack *s)
{
	struct vz_node *c = context(node);
	if (!c)
		return;
	pthread_mutex_lock(&stack_lock);
	struct vz_stack *old = c->stack;
	/* two rebuilds may race: the one for the newer generation stays */
	if (!old || old->gen <= s->gen) {
		vz_stack_get(s);
		c->stack = s;
	} else {
		old = NULL;
	}
	pthread_mutex_unlock(&stack_lock);
	vz_stack_put(old);	/* outside the lock: it may free a layer */
}

/* NODE's stack when it is current, with a reference; else NULL. */
static struct vz_stack *current_stack(struct vn_node *node, uint64_t gen)
{
	struct vz_stack *s = vz_node_cached_stack(node);
	if (s && s->gen != gen) {
		vz_stack_put(s);
		s = NULL;
	}
	return s;
}

static int root_stack(uint64_t gen, struct vz_stack **ret)
{
	struct layer_set *set = vz_set_get();
	int r = vz_stack_root(set, gen, ret);
	vz_set_put(set);
	if (r == 0)
		vz_node_set_stack(vn_root_node(), *ret);
	return r;
}

/* A node on the way down from a node with a current stack: referenced, with its name. */
struct link {
	struct vn_node *node;
	char *name;
};

struct chain {
	struct link *v;
	size_t n, cap;
};

static int chain_push(struct chain *ch, struct vn_node *node, const char *name)
{
	if (ch->n == ch->cap) {
		size_t cap = ch->cap ? ch->cap * 2 : 16;
		struct link *v = realloc(ch->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		ch->v = v;
		ch->cap = cap;
	}
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	ch->v[ch->n++] = (struct link){ node, copy };
	return 0;
}

/*
 * Walks up from NODE (referenced by the caller, the reference passing to
 * the chain) until a node whose stack is current, the root, or a node
 * without a name (unlinked: nothing of any layer shows in it); returns
 * that base stack.  The nodes passed on the way are in CH, nearest first.
 */
static int walk_up(struct vn_node *node, uint64_t gen, struct chain *ch, struct vz_stack **ret)
{
	char name[NAME_MAX + 1];
	struct vn_node *cur = node;
	for (;;) {
		int r;
		if (cur == vn_root_node())
			return root_stack(gen, ret);
		if (cur != node && (*ret = current_stack(cur, gen))) {
			vn_node_unref(cur);
			return 0;
		}
		struct vn_node *parent = vn_node_parent(cur, name, sizeof(name));
		if (!parent) {
			r = vz_stack_empty(gen, ret);
			if (r == 0)
				vz_node_set_stack(cur, *ret);
			vn_node_unref(cur);
			return r;
		}
		r = chain_push(ch, cur, name);
		if (r < 0) {
			vn_node_unref(cur);
			vn_node_unref(parent);
			return r;
		}
		cur = parent;
	}
}

int vz_node_stack(struct vn_node *node, struct vz_stack **ret)
{
	uint64_t gen = vz_gen_current();
	struct vz_stack *s = current_stack(node, gen);
	if (s) {
		*ret = s;
		return 0;
	}
	if (!vn_node_tryref(node))
		return -ENOENT;
	struct chain ch = { 0 };
	int r = walk_up(node, gen, &ch, &s);
	/* down again: each level's stack from its parent's */
	for (size_t i = ch.n; i-- > 0;) {
		struct vz_stack *child;
		if (r == 0) {
			r = vz_stack_lookup(s, ch.v[i].name, gen, NULL, &child);
			if (r == -ENOENT)
				r = 0;
			if (r == 0) {
				vz_node_set_stack(ch.v[i].node, child);
				vz_stack_put(s);
				s = child;
			}
		}
		free(ch.v[i].name);
		vn_node_unref(ch.v[i].node);
	}
	free(ch.v);
	if (r < 0) {
		vz_stack_put(s);
		return r;
	}
	*ret = s;
	return 0;
}
