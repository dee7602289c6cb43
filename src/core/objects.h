/*
 * The daemon's view of nodes and open files: what filters see as opaque
 * struct vn_node / struct vn_file.  Shared by the node table, the filter
 * manager (context slots) and the lower (descriptors).
 */
#ifndef VENEER_OBJECTS_H
#define VENEER_OBJECTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <veneer/filter.h>

#define VN_MAX_FILTERS 16

struct dir_snapshot;

/* Frees a listing the daemon allocated (calloc'd, names strdup'd); accepts NULL. */
void dirlist_free(struct vn_dirlist *list);

/* st_dev no real object has: the identity of virtual nodes. */
#define NODE_VIRTUAL_DEV ((dev_t)-1)

/*
 * A node is one object the kernel knows by node id (the address of this
 * struct; the root is FUSE_ROOT_ID).  It is freed when nlookup (kernel
 * references, changed only by entry replies and forget) and refcount (our
 * own: children's parent links, open files) are both zero.
 *
 * A node holds no descriptor of its own for its whole life: fd is a slot in
 * the bounded descriptor cache of the node table, reopened by name from the
 * parent when it was evicted (see node_table.h).
 */
struct vn_node {
	/*
	 * Identity, fixed at creation: on the lower for real nodes; for
	 * virtual nodes dev is NODE_VIRTUAL_DEV and ino equals st_ino.
	 */
	dev_t dev;
	ino_t ino;
	uint64_t st_ino;		/* number shown to applications */
	struct vn_filter *owner;	/* the filter serving a virtual node; NULL: real */

	/* All below: protected by node_table.lock. */
	uint64_t nlookup;
	uint64_t refcount;
	mode_t mode;			/* S_IFMT and permission bits, as last seen */
	struct vn_node *parent;		/* holds a refcount on the parent; NULL: root or unlinked */
	char *name;			/* name in parent; NULL when unlinked */
	int fd;				/* O_PATH descriptor, or -1 when not cached */
	unsigned int fd_users;		/* callers using fd right now: not evictable */
	bool pinned;			/* fd must stay open: the node cannot be reopened by name */
	struct vn_node *hash_next;
	struct vn_node *lru_prev, *lru_next;	/* nodes with a cached, evictable fd */

	/* Filter contexts: array of VN_MAX_FILTERS, set once with a CAS. */
	void **filter_ctx;

	/* The frontend's listing when directories are read without a handle; its lock. */
	struct dir_snapshot *listing;

	/* The frontend's passthrough state (frontend/passthrough.c); its pt_lock. */
	int pt_backing_id;		/* shared by all passthrough opens; 0: none */
	unsigned int pt_opens;		/* open files the kernel serves itself */
	unsigned int pt_cached_opens;	/* open files served through the page cache */
	bool pt_pages_stale;		/* passthrough wrote since pages were last cached */
};

/*
 * An open file or directory: the fh the kernel passes back.  refs counts
 * the kernel's reference (dropped by RELEASE) and each request using the
 * file; the last one closes fd and frees it.  The kernel already sends
 * RELEASE only after every request on the file was answered: the count
 * makes that ordering visible to the daemon (and to ThreadSanitizer) and
 * keeps a late request safe.
 */
struct vn_file {
	unsigned int refs;		/* atomic */
	struct vn_node *node;		/* holds a refcount */
	int fd;				/* real descriptor on the lower, or -1 */
	int flags;			/* open flags */
	struct dir_snapshot *dir;	/* the frontend's listing (directories only) */
	void **filter_ctx;		/* like vn_node.filter_ctx */
	void *owner_private;		/* for the component that completed the open */
	/* passthrough (frontend/passthrough.c): set before the open's reply */
	unsigned char pt_mode;		/* PT_NONE, PT_CACHED or PT_PASSTHROUGH */
	bool pt_applied;		/* the reply carried the backing id */
	int backing_id;
	struct vn_file *prev, *next;	/* the frontend's list of open files; its lock */
};

#endif
