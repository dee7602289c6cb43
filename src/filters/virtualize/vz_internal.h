/*
 * The virtualization filter's private declarations.
 *
 * Layers (vz_layers.c) are published as immutable sets: every operation
 * takes the current set with a reference and resolves against it, so an
 * attach or detach never changes what a running operation sees.  A layer
 * lives while the set, a node or an open file refers to it: a detached
 * layer keeps serving the files that were already open or looked up.
 *
 * Resolution (vz_resolve.c) is by path in the view: the real tree wins,
 * then the newest layer holding the path; directories from several layers
 * merge; directories on the way to an attach point are synthesized.
 *
 * Lock order: admin_lock (vz_admin.c) -> registry_lock (vz_filter.c) ->
 * node table lock (inside vn_node_path).  set_lock (vz_layers.c) and
 * init_lock are leaves.  admin_lock serializes attach, detach and status
 * on the control thread (or the main thread for --layer) and is held
 * across their source I/O and the wait for invalidations; no request
 * thread ever takes it.  The others are never held across I/O or a
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
struct vz_hit {
	struct layer *layer;		/* borrowed from the set */
	uint64_t ref;
	char *rel;			/* malloc'd; NULL for a synthesized directory */
	struct stat st;			/* as shown: st_ino mapped, read-only rules applied */
	bool synth;
};
void vz_hit_clear(struct vz_hit *h);
/*
 * Where a layer holds the parent directory of the path being resolved:
 * lets that layer look the last component up from there instead of walking
 * from its root.  rel is the parent's path in the layer.
 */
struct vz_parent_hint {
	const struct layer *layer;
	uint64_t ref;
	const char *rel;
};
/* What the layers show at view path PATH: 0 and *hit, -ENOENT, or -errno. HINT may be NULL. */
int vz_resolve(struct layer_set *set, const char *path, const struct vz_parent_hint *hint,
	       struct vz_hit *hit);
/* REL inside layer L: its ref and attributes as stored (-ENOENT when absent). */
int vz_layer_walk(struct layer *l, const char *rel, uint64_t *ret_ref, struct stat *st);
/* Quick test: can any layer hold PATH or something under it? */
bool vz_set_covers(const struct layer_set *set, const char *path);
/*
 * Calls fn(arg, ...) for each name the layers show in directory PATH (each
 * once, newest layer first), leaving out the names in SKIP (may be NULL).
 */
struct vz_names;
typedef int vz_name_fn(void *arg, const char *name, uint64_t ino, mode_t type);
int vz_list(struct layer_set *set, const char *path, const struct vz_names *skip, vz_name_fn *fn,
	    void *arg);
/* A set of names (open addressing over string hashes); zero-initialized is empty. */
struct vz_names {
	char **slot;
	size_t cap, n;
};
bool vz_names_has(const struct vz_names *ns, const char *name);
int vz_names_add(struct vz_names *ns, const char *name);
void vz_names_free(struct vz_names *ns);

/* The number shown for a synthesized directory at PATH. */
uint64_t vz_synth_ino(const char *path);

/* vz_filter.c */
extern const struct vn_filter_ops vz_filter_ops;
struct vn_filter *vz_filter(void);
/* Calls fn for every directory node the kernel may cache (registry). */
typedef void vz_dir_fn(void *arg, struct vn_node *node, const char *path);
void vz_for_each_dir(vz_dir_fn *fn, void *arg);

#endif
