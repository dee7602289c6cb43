/*
 * The virtualization filter's private declarations.
 *
 * Layers (vz_layers.c) are published as immutable sets: every operation
 * takes the current set with a reference and resolves against it, so an
 * attach or detach never changes what a running operation sees.  A layer
 * lives while the set, a node or an open file refers to it: a detached
 * layer keeps serving the files that were already open or looked up.
 *
 * Resolution is by node, never by view path: each directory node carries
 * a layer stack (vz_stack.c, vz_nodes.c) with each covering layer's own
 * handle for it; a child is one lookup per covering layer.  The real tree
 * wins, then the newest layer holding the name; directories from several
 * layers merge; directories on the way to an attach point are synthesized.
 *
 * Lock order: admin_lock (vz_admin.c) -> registry_lock (vz_filter.c) ->
 * node table lock (inside vn_node_path, vn_node_tryref).  set_lock
 * (vz_layers.c), stack_lock (vz_nodes.c) and init_lock are leaves.  No
 * vz lock is held across vn_node_unref(), which may run node_cleanup.
 * admin_lock serializes attach and detach
 * on the control thread (or the main thread for --layer) and is held
 * across their source I/O and the wait for invalidations; no request
 * thread ever takes it.  Status takes no vz lock but set_lock, for its
 * reference on the current set.  The others are never held across I/O or a
 * callback of another filter.
 */
#ifndef VENEER_VZ_INTERNAL_H
#define VENEER_VZ_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include <veneer/filter.h>

#include "filters/virtualize/virtualize.h"
#include "layer/source.h"

/* Seconds the kernel may cache virtual entries: they are immutable while attached. */
#define VZ_TIMEOUT 86400.0

struct layer {
	uint64_t id;			/* 1, 2, ... in attach order */
	char *source_path;		/* as the user named it */
	char *path;			/* attach point in the view, normalized ("/" or "/a/b") */
	size_t path_len;
	struct source *src;
	uint64_t key;			/* identity of its inode numbers: source and path */
	uint64_t root_ref;
	struct stat root_st;
	unsigned int refs;		/* atomic: sets, nodes and files using it */
	unsigned int open_files;	/* atomic: opens the kernel sent */
	bool detached;			/* atomic */
};

struct layer_set {
	unsigned int refs;		/* atomic */
	size_t n;
	struct layer *layer[];		/* newest first; each holds a reference */
};

/* vz_paths.c */
int vz_path_normalize(const char *in, char *out, size_t size);
/* REL of X inside P ("" when equal), or NULL when X is not P or under it. */
const char *vz_path_under(const char *x, const char *p, size_t plen);
/* When X is a proper ancestor of P: the next component of P after X (length in *len). */
const char *vz_path_next_component(const char *x, const char *p, size_t *len);
int vz_path_join(const char *dir, const char *name, char *out, size_t size);

/* vz_layers.c */
struct layer_set *vz_set_get(void);		/* the current set, with a reference */
void vz_set_put(struct layer_set *set);
bool vz_set_empty(void);
void vz_layer_get(struct layer *l);
void vz_layer_put(struct layer *l);
/* Takes the reference on src; publishes a new set with the layer first. */
int vz_layers_add(struct source *src, const char *source_path, const char *path,
		  struct layer **ret);
/* Removes the layer (by id, or the newest at PATH); returns it with a reference. */
int vz_layers_remove(const char *spec, struct layer **ret);
void vz_layers_clear(void);

/* vz_resolve.c */
/* REL inside layer L: its ref and attributes as stored (-ENOENT when absent). */
int vz_layer_walk(struct layer *l, const char *rel, uint64_t *ret_ref, struct stat *st);
/* A set of names (open addressing over string hashes); zero-initialized is empty. */
struct vz_names {
	char **slot;
	size_t cap, n;
};
bool vz_names_has(const struct vz_names *ns, const char *name);
int vz_names_add(struct vz_names *ns, const char *name);
void vz_names_free(struct vz_names *ns);

/* vz_stack.c */
/*
 * One covering layer of a directory: inside the layer (way 0) its handle
 * there, ref plus, for a directory source only, rel (the path inside the
 * source, which the source opens from its cached directory descriptors);
 * or on the way to the
 * layer's attach point (way > 0: the offset in layer->path of the next
 * component), where the directory is synthesized.
 */
struct vz_entry {
	struct layer *layer;		/* a reference */
	uint64_t ref;
	char *rel;			/* NULL for images and on the way */
	size_t way;
};

/*
 * The layers covering one directory of the view, newest first.  Immutable
 * once built; reference-counted; valid while gen is the current
 * generation.
 */
struct vz_stack {
	unsigned int refs;		/* atomic */
	uint64_t gen;
	size_t n;
	struct vz_entry e[];
};

/* The winning candidate of a name: what the view shows there. */
struct vz_hit {
	struct layer *layer;		/* a reference, dropped by vz_hit_clear() */
	uint64_t ref;
	char *rel;			/* malloc'd ("" for images); NULL for a synthesized directory */
	struct stat st;			/* as shown: st_ino mapped, read-only rules applied */
	bool synth;
};
void vz_hit_clear(struct vz_hit *h);

/* The generation stacks are built for; bumped by attach, detach and moves of covered directories. */
uint64_t vz_gen_current(void);
void vz_gen_bump(void);

void vz_stack_get(struct vz_stack *s);
void vz_stack_put(struct vz_stack *s);	/* accepts NULL */
int vz_stack_empty(uint64_t gen, struct vz_stack **ret);
/* The stack of the view's root for SET (may be NULL: no layer). */
int vz_stack_root(struct layer_set *set, uint64_t gen, struct vz_stack **ret);
/*
 * NAME in the directory whose stack is P: one lookup per covering layer.
 * Returns 0 (something holds it) or -ENOENT, or -errno of a source.  On 0,
 * *hit (when HIT is not NULL) is the newest layer's candidate; on 0 and
 * -ENOENT, *ret_child (when not NULL) is the child's stack: every layer
 * that holds a directory there (empty when none does).
 */
int vz_stack_lookup(const struct vz_stack *p, const char *name, uint64_t gen, struct vz_hit *hit,
		    struct vz_stack **ret_child);
/* Whether two stacks show the same layers the same way (NULL is empty). */
bool vz_stack_equal(const struct vz_stack *a, const struct vz_stack *b);
/*
 * Calls fn(arg, ...) for each name the stack's layers show (each once,
 * newest layer first), leaving out the names in SKIP (may be NULL).
 */
typedef int vz_name_fn(void *arg, const char *name, uint64_t ino, mode_t type);
int vz_stack_list(const struct vz_stack *s, const struct vz_names *skip, vz_name_fn *fn,
		  void *arg);


/* vz_nodes.c */
enum vz_kind { VZ_REAL = 0, VZ_FILE, VZ_DIR };

/*
 * Per-node context.  Fields from kind to st are written once, before
 * ready is set (virtual nodes only).
 */
struct vz_node {
	int ready;			/* atomic */
	enum vz_kind kind;
	struct layer *layer;		/* a reference; NULL for real and synthesized nodes */
	uint64_t ref;
	char *rel;
	struct stat st;			/* attributes shown */
	/* a directory's layer stack, under stack_lock (vz_nodes.c); NULL until first needed */
	struct vz_stack *stack;
	/* registry of directories, under registry_lock (registered also read atomically) */
	struct vn_node *node;
	struct vz_node *prev, *next;
	bool registered;
};

/*
 * NODE's layer stack for the current generation, with a reference.  A
 * stale one is rebuilt from the parent's (the chain up to the first
 * ancestor with a current stack, or the root), one lookup per covering
 * layer and level; no path is built.  May block (source I/O).
 */
int vz_node_stack(struct vn_node *node, struct vz_stack **ret);
/* NODE's stack as it is now (any generation), with a reference, or NULL. */
struct vz_stack *vz_node_cached_stack(struct vn_node *node);
/* Installs S (taking a reference) as NODE's stack unless a newer one is there. */
void vz_node_set_stack(struct vn_node *node, struct vz_stack *s);

/* vz_filter.c */
extern const struct vn_filter_ops vz_filter_ops;
struct vn_filter *vz_filter(void);
/* Calls fn for every directory node the kernel may cache (registry). */
typedef void vz_dir_fn(void *arg, struct vn_node *node, const char *path);
void vz_for_each_dir(vz_dir_fn *fn, void *arg);
/* Every directory node of the registry, each with a reference (vn_node_unref); caller frees the array. */
int vz_registry_nodes(struct vn_node ***ret, size_t *ret_n);

/* vz_moves.c */
/*
 * After a rename moved a directory from or to a covered place: bumps the
 * generation and queues the invalidation of every kernel cache whose
 * directory's stack changed.  Called from the request (only queues).
 */
void vz_moved(void);

/* vz_admin.c */
/*
 * The filter's load arguments (common/filter_args.h): one
 * "layer=SRC[:PATH][#sha256:HEX]" line per layer, attached in order before
 * the mount serves.  0, or -errno after vn_attach_error(F) and with no
 * layer left attached.
 */
int vz_attach_args(struct vn_filter *f, const char *args);

/*
 * Opens the filter's ports "attach" and "detach" (veneer attach and
 * detach): a message holds the request's arguments, each ended by a NUL;
 * the reply is the new layer's id (attach) or empty; a refusal says why.
 */
int vz_ports_open(struct vn_filter *f);

#endif
