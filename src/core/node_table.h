/*
 * The node table: node id -> node, exact kernel lookup counting, and a
 * bounded cache of O_PATH descriptors.
 *
 * A node does not keep a descriptor for its whole life (the kernel may
 * remember far more inodes than the process may hold descriptors).  Its
 * descriptor lives in an LRU cache of at most fd_cap entries; when evicted,
 * it is reopened by name from the parent's descriptor (openat with
 * O_NOFOLLOW, never through the mount) and checked against the node's
 * device and inode number (-ESTALE when the name now holds another object).
 * A GETATTR of such a node does not reopen it: node_table_stat() stats
 * the name in the parent's cached descriptor under the same check.
 * Nodes that cannot be reopened by name (unlinked, or overwritten by a
 * rename) are pinned: their descriptor stays until the kernel forgets them.
 *
 * Lock order: node_table.lock is a leaf apart from inode_map.lock, which
 * may be taken inside it.  It is never held across a syscall on the lower,
 * a filter callback or a reply.
 */
#ifndef VENEER_NODE_TABLE_H
#define VENEER_NODE_TABLE_H

#include <stddef.h>
#include <sys/stat.h>

#include "core/objects.h"

struct node_table;
struct inode_map;

typedef void node_free_fn(struct vn_node *node, void *arg);

/*
 * root_fd: takes ownership; an O_PATH descriptor of LOWER opened before the
 * mount.  on_free is called for each node before it is freed (filter
 * contexts), without the table lock.
 */
int node_table_new(int root_fd, size_t fd_cap, struct inode_map *imap, node_free_fn *on_free,
		   void *on_free_arg, struct node_table **ret_table);
void node_table_free(struct node_table *t);

struct vn_node *node_table_root(struct node_table *t);
struct inode_map *node_table_inode_map(struct node_table *t);

/*
 * Finds or creates the node of the object st found as NAME in PARENT and
 * adds one kernel lookup.  The node's name is updated to PARENT/NAME.
 * fd: takes ownership; an O_PATH descriptor of the object to cache in the
 * node, or -1.  Returns 0 or -ENOMEM (fd is closed then too).
 */
int node_table_lookup(struct node_table *t, struct vn_node *parent, const char *name,
		      const struct stat *st, int fd, struct vn_node **ret_node);

/*
 * The same for a virtual node: identity (NODE_VIRTUAL_DEV, st_ino), served
 * by OWNER, never given a descriptor.
 */
int node_table_lookup_virtual(struct node_table *t, struct vn_filter *owner,
			      struct vn_node *parent, const char *name, uint64_t st_ino,
			      mode_t mode, struct vn_node **ret_node);

/* Drops n kernel lookups (FUSE forget). */
void node_table_forget(struct node_table *t, struct vn_node *node, uint64_t n);

/* The kernel's lookups of NODE counted now (FUSE lookup count). */
uint64_t node_table_lookups(struct node_table *t, struct vn_node *node);

/* Finds the node of (dev, ino) and takes a reference, or returns NULL. */
struct vn_node *node_table_find(struct node_table *t, dev_t dev, ino_t ino);
void node_ref(struct node_table *t, struct vn_node *node);
void node_unref(struct node_table *t, struct vn_node *node);

/*
 * The node's O_PATH descriptor, valid until node_fd_put().  May block
 * (reopens by name).  Returns 0 or -errno.
 */
int node_fd_get(struct node_table *t, struct vn_node *node, int *ret_fd);
void node_fd_put(struct node_table *t, struct vn_node *node);

/*
 * Stats a node (as fstatat with AT_SYMLINK_NOFOLLOW) through its cached
 * descriptor, or, when it has none, by its name in its parent's cached
 * descriptor: one fstatat instead of a reopen (openat, fstat) and a stat.
 * A stat by name counts only if it carries the node's device and inode
 * number (a stale name, a hard link's other name, a rename or replacement
 * on the lower do not pass).  Returns 0 with *st filled, -errno from the
 * stat of a cached descriptor, or -EAGAIN when the caller must take
 * node_fd_get() (neither descriptor cached, no name, or the identity did
 * not match).  Never blocks beyond the one fstatat, never opens a
 * descriptor.
 */
int node_table_stat(struct node_table *t, struct vn_node *node, struct stat *st);

/* After a rename or link: NODE is now NAME in PARENT. */
void node_table_set_name(struct node_table *t, struct vn_node *node, struct vn_node *parent,
			 const char *name);

/*
 * NODE is about to lose its name (unlink, rmdir, rename over it): keep its
 * descriptor open so it stays reachable.  Returns 0 or -errno.
 */
int node_table_pin(struct node_table *t, struct vn_node *node);
/* The operation that would have removed the name failed: evictable again. */
void node_table_unpin(struct node_table *t, struct vn_node *node);
/* The name is gone (after a successful unlink/rmdir/overwrite). */
void node_table_clear_name(struct node_table *t, struct vn_node *node);

void node_table_set_mode(struct node_table *t, struct vn_node *node, mode_t mode);

/*
 * NODE's parent (with a reference) and name, copied into name (NAME_MAX+1
 * bytes).  Returns 0, or -ESTALE when the node has no name any more.
 */
int node_table_parent_name(struct node_table *t, struct vn_node *node, struct vn_node **ret_parent,
			   char *name);

/*
 * Calls FN for the root and every node in T, under T's lock: FN must not
 * block or call back into the table.  A node already unlinked and being
 * freed is not visited.
 */
void node_table_each(struct node_table *t, void (*fn)(struct vn_node *node, void *arg), void *arg);

/* Makes T the table that vn_node_path() and vn_node_mode() read. */
void node_table_publish(struct node_table *t);

/*
 * openat(2) that, when the process is out of descriptors (EMFILE), closes
 * a share of the cached ones and tries once more: open files and the cache
 * draw on the same limit.  Returns the descriptor, or -1 with errno set.
 */
int node_table_openat(struct node_table *t, int dirfd, const char *path, int flags, mode_t mode);

/* Descriptors currently cached (for tests and status). */
size_t node_table_fds_cached(struct node_table *t);

#endif
