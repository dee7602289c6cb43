/*
 * The virtualization filter's callbacks: it completes every operation on
 * its virtual nodes (read-only rules of DESIGN section 3), fills lookups
 * the real tree could not answer, merges listings of real directories, and
 * keeps names the layers hold from being created, removed or renamed in
 * real directories.
 *
 * It also keeps a registry of the directory nodes the kernel knows (real
 * and virtual), so attach and detach can invalidate exactly the kernel
 * caches they change (vz_admin.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "filters/virtualize/vz_internal.h"

/* Per-open-file context of a virtual file: keeps its layer alive and counted. */
struct vz_file {
	struct layer *layer;
};

static struct vn_filter *self;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vz_node registry = { .prev = &registry, .next = &registry };

struct vn_filter *vz_filter(void)
{
	return self;
}

static bool is_virtual(const struct vn_node *n)
{
	return n && vn_node_owner(n) == self;
}

/* The context of a virtual node (always initialized before the kernel knew the node). */
static struct vz_node *vnode(struct vn_node *n)
{
	struct vz_node *c = vn_node_context(self, n);
	if (c && !__atomic_load_n(&c->ready, __ATOMIC_ACQUIRE))
		return NULL;
	return c;
}

static void registry_add(struct vn_node *node)
{
	struct vz_node *c = vn_node_context(self, node);
	/* every lookup of a known directory comes here: skip the lock when done */
	if (!c || __atomic_load_n(&c->registered, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&registry_lock);
	if (!c->registered) {
		c->node = node;
		c->next = registry.next;
		c->prev = &registry;
		registry.next->prev = c;
		registry.next = c;
		__atomic_store_n(&c->registered, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&registry_lock);
}

static void node_cleanup(struct vn_filter *f, void *ctx)
{
	struct vz_node *c = ctx;
	pthread_mutex_lock(&registry_lock);
	if (c->registered) {
		c->prev->next = c->next;
		c->next->prev = c->prev;
		__atomic_store_n(&c->registered, false, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&registry_lock);
	vz_layer_put(c->layer);
	vz_stack_put(c->stack);
	free(c->rel);
}

static void file_cleanup(struct vn_filter *f, void *ctx)
{
	struct vz_file *vf = ctx;
	if (!vf->layer)
		return;
	__atomic_sub_fetch(&vf->layer->open_files, 1, __ATOMIC_RELAXED);
	vz_layer_put(vf->layer);
}

int vz_registry_nodes(struct vn_node ***ret, size_t *ret_n)
{
	pthread_mutex_lock(&registry_lock);
	size_t cap = 0, n = 0;
	for (struct vz_node *c = registry.next; c != &registry; c = c->next)
		cap++;
	struct vn_node **v = malloc((cap ? cap : 1) * sizeof(*v));
	for (struct vz_node *c = registry.next; v && c != &registry; c = c->next) {
		/* a node whose cleanup waits for registry_lock is already being freed */
		if (vn_node_tryref(c->node))
			v[n++] = c->node;
	}
	pthread_mutex_unlock(&registry_lock);
	if (!v)
		return -ENOMEM;
	*ret = v;
	*ret_n = n;
	return 0;
}

void vz_for_each_dir(vz_dir_fn *fn, void *arg)
{
	char path[PATH_MAX];
	struct vn_node *root = vn_root_node();
	fn(arg, root, "/");
	pthread_mutex_lock(&registry_lock);
	for (struct vz_node *c = registry.next; c != &registry; c = c->next) {
		if (c->node == root || vn_node_path(c->node, path, sizeof(path)) < 0)
			continue;
		fn(arg, c->node, path);
	}
	pthread_mutex_unlock(&registry_lock);
}

static enum vn_verdict complete(struct vn_op *op, int error)
{
	op->error = error;
	return VN_COMPLETE;
}

/*
 * What the layers show at PARENT/NAME: 0 and *hit, or -ENOENT / -errno,
 * from the parent's stack (one lookup per covering layer).  RET_CHILD
 * (may be NULL) receives the child's stack on 0 and -ENOENT, or NULL when
 * the parent has no covering layer.
 */
static int resolve_child(struct vn_node *parent, const char *name, struct vz_hit *hit,
			 struct vz_stack **ret_child)
{
	struct vz_stack *s;
	if (ret_child)
		*ret_child = NULL;
	int r = vz_node_stack(parent, &s);
	if (r < 0)
		return r;
	if (s->n == 0) {
		vz_stack_put(s);
		return -ENOENT;	/* nothing covers the parent: no name is looked at */
	}
	r = vz_stack_lookup(s, name, s->gen, hit, ret_child);
	vz_stack_put(s);
	return r;
}

/* ---- lookup ---- */

static void init_context(struct vz_node *c, struct vz_hit *hit)
{
	pthread_mutex_lock(&init_lock);
	if (!c->ready) {
		c->kind = S_ISDIR(hit->st.st_mode) ? VZ_DIR : VZ_FILE;
		c->st = hit->st;
		c->ref = hit->ref;
		c->rel = hit->rel;
		hit->rel = NULL;
		if (!hit->synth) {
			c->layer = hit->layer;
			vz_layer_get(c->layer);
		}
		__atomic_store_n(&c->ready, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&init_lock);
}

/*
 * Completes OP (a LOOKUP) with the virtual node HIT describes; a directory
 * starts with its stack CHILD (may be NULL), saving its first rebuild.
 */
static int reply_virtual(struct vn_op *op, struct vz_hit *hit, struct vz_stack *child)
{
	struct vn_node *node;
	int r = vn_node_virtual(self, op->node, op->name, hit->st.st_ino, hit->st.st_mode, &node);
	if (r < 0)
		return r;
	struct vz_node *c = vn_node_context(self, node);
	if (!c) {
		/*
		 * Out of memory: the kernel gets no entry, and the lookup just
		 * counted keeps the node until unmount (the API has no way to
		 * give it back; rare enough to accept).
		 */
		op->out.entry = NULL;
		return -ENOMEM;
	}
	init_context(c, hit);
	if (c->kind == VZ_DIR && child)
		vz_node_set_stack(node, child);
	if (c->kind == VZ_DIR)
		registry_add(node);
	op->out.entry = node;
	op->out.attr = c->st;
	op->out.attr_timeout = VZ_TIMEOUT;
	op->out.entry_timeout = VZ_TIMEOUT;
	return 0;
}

static int lookup_layers(struct vn_op *op)
{
	struct vz_hit hit;
	struct vz_stack *child;
	int r = resolve_child(op->node, op->name, &hit, &child);
	if (r == 0) {
		r = reply_virtual(op, &hit, child);
		vz_hit_clear(&hit);
	}
	vz_stack_put(child);
	return r;
}

static enum vn_verdict lookup_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (is_virtual(op->node))
		return complete(op, lookup_layers(op));
	return VN_PASS_WITH_POST;
}

static void lookup_post(struct vn_filter *f, struct vn_op *op, void *post)
{
	if (op->error == 0) {
		if (S_ISDIR(op->out.attr.st_mode))
			registry_add(op->out.entry);
		return;
	}
	if (op->error == -ENOENT && !vz_set_empty())
		op->error = lookup_layers(op);
}

/* ---- attributes and data of virtual nodes ---- */

static enum vn_verdict getattr_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (!is_virtual(op->node))
		return VN_PASS;
	struct vz_node *c = vnode(op->node);
	if (!c)
		return complete(op, -EIO);
	op->out.attr = c->st;
	op->out.attr_timeout = VZ_TIMEOUT;
	return complete(op, 0);
}

static enum vn_verdict readlink_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (!is_virtual(op->node))
		return VN_PASS;
	struct vz_node *c = vnode(op->node);
	if (!c || !c->layer)
		return complete(op, -EINVAL);
	char *buf = malloc(PATH_MAX + 1);
	if (!buf)
		return complete(op, -ENOMEM);
	ssize_t n = source_readlink(c->layer->src, c->ref, c->rel, buf, PATH_MAX + 1);
	if (n < 0) {
		free(buf);
		return complete(op, (int)n == -ERANGE ? -ENAMETOOLONG : (int)n);
	}
	op->out.link = buf;
	return complete(op, 0);
}

static bool wants_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

static enum vn_verdict open_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (!is_virtual(op->node))
		return VN_PASS;
	struct vz_node *c = vnode(op->node);
	if (!c)
		return complete(op, -EIO);
	if (wants_write(op->in.open.flags))
		return complete(op, -EROFS);
	if (op->file && c->layer) {
		struct vz_file *vf = vn_file_context(f, op->file);
		if (!vf)
			return complete(op, -ENOMEM);
		vf->layer = c->layer;
		vz_layer_get(c->layer);
		__atomic_add_fetch(&c->layer->open_files, 1, __ATOMIC_RELAXED);
	}
	op->out.keep_cache = 1;
	return complete(op, 0);
}

/*
 * The image block holding a read that asks for less than it: [*start,
 * *end).  False when the read covers the block or crosses into the next,
 * or the source has no blocks worth caching (directories).
 */
static bool partial_block(const struct vz_node *c, off_t off, size_t size, off_t *start, off_t *end)
{
	off_t bs = c->st.st_blksize;
	if (source_kind(c->layer->src) != SOURCE_SQUASHFS || bs < 4096 || (bs & (bs - 1)))
		return false;
	*start = off & ~(bs - 1);
	*end = *start + bs < c->st.st_size ? *start + bs : c->st.st_size;
	/* a read past the end of the file is short anyway */
	bool inside = off + (off_t)size <= *end || *end == c->st.st_size;
	return *start < *end && inside && (off > *start || off + (off_t)size < *end);
}

/*
 * A read smaller than the image's block decompressed the whole block: read
 * all of it, answer the part asked for, and offer the block to the page
 * cache, so the next reads in it (random 4 KiB reads, mostly) never reach
 * the daemon.  The file cannot change while the kernel caches it.
 */
static ssize_t read_via_block(struct vz_node *c, struct vn_node *node, char *buf, size_t size,
			      off_t off, off_t start, off_t end)
{
	size_t blen = (size_t)(end - start);
	char *blk = malloc(blen);
	if (!blk)
		return source_read(c->layer->src, c->ref, c->rel, buf, size, off);
	ssize_t n = source_read(c->layer->src, c->ref, c->rel, blk, blen, start);
	if (n == (ssize_t)blen) {
		size_t from = (size_t)(off - start);
		n = (ssize_t)(from >= blen ? 0 : (size < blen - from ? size : blen - from));
		memcpy(buf, blk + from, (size_t)n);
		vn_cache_offer(node, start, blk, blen);
	} else if (n >= 0) {
		n = source_read(c->layer->src, c->ref, c->rel, buf, size, off);
	}
	free(blk);
	return n;
}

static enum vn_verdict read_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (!is_virtual(op->node))
		return VN_PASS;
	struct vz_node *c = vnode(op->node);
	if (!c || c->kind != VZ_FILE || !c->layer)
		return complete(op, -EISDIR);
	size_t size = op->in.read.size;
	off_t off = op->in.read.offset, start, end;
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return complete(op, -ENOMEM);
	ssize_t n = partial_block(c, off, size, &start, &end)
			    ? read_via_block(c, op->node, buf, size, off, start, end)
			    : source_read(c->layer->src, c->ref, c->rel, buf, size, off);
	if (n < 0) {
		free(buf);
		return complete(op, (int)n);
	}
	op->out.data.buf = buf;
	op->out.data.size = (size_t)n;
	op->out.data.fd = -1;
	return complete(op, 0);
}

static enum vn_verdict lseek_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (!is_virtual(op->node))
		return VN_PASS;
	struct vz_node *c = vnode(op->node);
	if (!c)
		return complete(op, -EIO);
	off_t size = c->st.st_size, off = op->in.lseek.offset;
	if (op->in.lseek.whence != SEEK_DATA && op->in.lseek.whence != SEEK_HOLE)
		return complete(op, -EINVAL);
	if (off < 0 || off >= size)
		return complete(op, -ENXIO);
	/* images keep no hole map the view can use: all of the file is data */
	op->out.offset = op->in.lseek.whence == SEEK_DATA ? off : size;
	return complete(op, 0);
}

static ssize_t xattr_call(struct vz_node *c, struct vn_op *op, char *buf, size_t size)
{
	if (!c->layer)	/* synthesized: nothing stored */
		return op->opcode == VN_OP_GETXATTR ? -ENODATA : 0;
	if (op->opcode == VN_OP_GETXATTR)
		return source_getxattr(c->layer->src, c->ref, c->rel, op->name, buf, size);
	return source_listxattr(c->layer->src, c->ref, c->rel, buf, size);
}

static enum vn_verdict xattr_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (!is_virtual(op->node))
		return VN_PASS;
	struct vz_node *c = vnode(op->node);
	if (!c)
		return complete(op, -EIO);
	ssize_t need = xattr_call(c, op, NULL, 0);
	if (need < 0)
		return complete(op, (int)need);
	size_t want = op->in.getxattr.size;
	if (want == 0 || need == 0) {
		op->out.xattr_size = (size_t)need;
		return complete(op, 0);
	}
	if ((size_t)need > want)
		return complete(op, -ERANGE);
	char *buf = malloc((size_t)need);
	if (!buf)
		return complete(op, -ENOMEM);
	ssize_t n = xattr_call(c, op, buf, (size_t)need);
	if (n < 0) {
		free(buf);
		return complete(op, (int)n);
	}
	op->out.xattr = buf;
	op->out.xattr_size = (size_t)n;
	return complete(op, 0);
}

static enum vn_verdict access_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (!is_virtual(op->node))
		return VN_PASS;
	struct vz_node *c = vnode(op->node);
	if (!c)
		return complete(op, -EIO);
	int mask = op->in.access.mask;
	if (mask & W_OK)
		return complete(op, -EROFS);
	mode_t m = c->st.st_mode;
	mode_t bits = 0;
	if (op->caller.uid == 0)
		bits = (mask & X_OK) && !S_ISDIR(m) && !(m & 0111) ? 0 : 07;
	else if (op->caller.uid == c->st.st_uid)
		bits = (m >> 6) & 7;
	else if (op->caller.gid == c->st.st_gid)
		bits = (m >> 3) & 7;
	else
		bits = m & 7;
	return complete(op, ((mode_t)mask & ~bits & 07) ? -EACCES : 0);
}

static enum vn_verdict statfs_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (is_virtual(op->node))
		op->node = vn_root_node();	/* the mount's figures are the real filesystem's */
	return VN_PASS;
}

static enum vn_verdict sync_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	return is_virtual(op->node) ? complete(op, 0) : VN_PASS;
}

/* SETATTR WRITE FALLOCATE SETXATTR REMOVEXATTR: a virtual target is read-only. */
static enum vn_verdict readonly_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	return is_virtual(op->node) ? complete(op, -EROFS) : VN_PASS;
}

static enum vn_verdict copy_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (is_virtual(op->in.copy.node_out))
		return complete(op, -EROFS);
	/* the lower cannot read a virtual file: the caller falls back to read/write */
	return is_virtual(op->node) ? complete(op, -EXDEV) : VN_PASS;
}

/* ---- directories ---- */

static enum vn_verdict opendir_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	return is_virtual(op->node) ? complete(op, 0) : VN_PASS;
}

static int add_entry(void *arg, const char *name, uint64_t ino, mode_t type)
{
	return vn_dirlist_add(arg, name, (ino_t)ino, type);
}

static enum vn_verdict readdir_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (!is_virtual(op->node))
		return vz_set_empty() ? VN_PASS : VN_PASS_WITH_POST;
	struct vz_node *c = vnode(op->node);
	if (!c)
		return complete(op, -EIO);
	struct vz_stack *s;
	int r = vz_node_stack(op->node, &s);
	if (r < 0)
		return complete(op, r);
	r = vn_dirlist_add(op->out.dir, ".", c->st.st_ino, S_IFDIR);
	if (r == 0)
		r = vn_dirlist_add(op->out.dir, "..", c->st.st_ino, S_IFDIR);
	if (r == 0)
		r = vz_stack_list(s, NULL, add_entry, op->out.dir);
	vz_stack_put(s);
	return complete(op, r);
}

static void readdir_post(struct vn_filter *f, struct vn_op *op, void *post)
{
	if (op->error)
		return;
	struct vz_stack *s;
	int r = vz_node_stack(op->node, &s);
	if (r < 0) {
		op->error = r;
		return;
	}
	struct vz_names real = { 0 };
	for (size_t i = 0; i < op->out.dir->count && s->n && r == 0; i++)
		r = vz_names_add(&real, op->out.dir->entries[i].name);
	if (r == 0 && s->n)
		r = vz_stack_list(s, &real, add_entry, op->out.dir);
	vz_names_free(&real);
	vz_stack_put(s);
	if (r < 0)
		op->error = r;
}

/* ---- names in directories ---- */

/*
 * What the layers hold at PARENT/NAME when no real object does: 1 (a
 * virtual name), 0 (none, or a real object shadows it), or -errno.  With
 * RET_CHILD, a 0 comes with the stack of the name (NULL when no layer
 * covers PARENT).
 */
static int virtual_only(struct vn_node *parent, const char *name, struct vz_stack **ret_child)
{
	struct vz_stack *child = NULL;
	if (ret_child)
		*ret_child = NULL;
	if (vz_set_empty())
		return 0;
	int r = resolve_child(parent, name, NULL, ret_child ? &child : NULL);
	if (r == 0) {
		struct stat st;
		int real = vn_real_stat(parent, name, &st);
		r = real == -ENOENT ? 1 : real;
	}
	if (r == -ENOENT)
		r = 0;
	if (r == 0 && ret_child)
		*ret_child = child;
	else
		vz_stack_put(child);
	return r;
}

static enum vn_verdict make_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	struct vn_node *dir = op->opcode == VN_OP_LINK ? op->newparent : op->node;
	const char *name = op->opcode == VN_OP_LINK ? op->newname : op->name;
	if (is_virtual(dir) || (op->opcode == VN_OP_LINK && is_virtual(op->node)))
		return complete(op, -EROFS);
	int r = virtual_only(dir, name, NULL);
	if (r < 0)
		return complete(op, r);
	if (r == 0)
		return VN_PASS;
	if (op->opcode == VN_OP_CREATE && !(op->in.open.flags & O_EXCL) &&
	    wants_write(op->in.open.flags))
		return complete(op, -EROFS);
	return complete(op, -EEXIST);
}

/* Stops a listing at its first name: the directory shows something. */
static int any_name(void *arg, const char *name, uint64_t ino, mode_t type)
{
	return -ENOTEMPTY;
}

/* -ENOTEMPTY when the layers show entries in the directory of stack CHILD (may be NULL). */
static int layers_show_entries(struct vz_stack *child)
{
	return child ? vz_stack_list(child, NULL, any_name, NULL) : 0;
}

static enum vn_verdict remove_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (is_virtual(op->node))
		return complete(op, -EROFS);
	struct vz_stack *child;
	int r = virtual_only(op->node, op->name, op->opcode == VN_OP_RMDIR ? &child : NULL);
	if (r < 0)
		return complete(op, r);
	if (r == 1)
		return complete(op, -EROFS);
	if (op->opcode != VN_OP_RMDIR)
		return VN_PASS;
	/* a real directory that also shows virtual entries is not empty */
	r = layers_show_entries(child);
	vz_stack_put(child);
	return r < 0 ? complete(op, r) : VN_PASS;
}

/* Whether any layer covers directory NODE (then a directory moved out of or into it matters). */
static bool covered(struct vn_node *node)
{
	struct vz_stack *s;
	if (vz_node_stack(node, &s) < 0)
		return true;	/* unknown: treat as covered, which only costs invalidations */
	bool any = s->n > 0;
	vz_stack_put(s);
	return any;
}

static bool is_real_dir(struct vn_node *parent, const char *name)
{
	struct stat st;
	return vn_real_stat(parent, name, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * A directory renamed over a real directory replaces it only when that
 * one is empty, and as for rmdir, one that shows virtual entries is not
 * (the kernel's own answer would come from the real, empty directory).
 */
static int replaced_dir_empty(struct vn_op *op, struct vz_stack *target)
{
	if (!target || (op->in.rename.flags & (RENAME_EXCHANGE | RENAME_NOREPLACE)) ||
	    !is_real_dir(op->newparent, op->newname) || !is_real_dir(op->node, op->name))
		return 0;
	return layers_show_entries(target);
}

static enum vn_verdict rename_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (is_virtual(op->node) || is_virtual(op->newparent))
		return complete(op, -EROFS);
	struct vz_stack *target = NULL;
	int r = virtual_only(op->node, op->name, NULL);
	if (r == 0)
		r = virtual_only(op->newparent, op->newname, &target);
	if (r == 0)
		r = replaced_dir_empty(op, target);
	vz_stack_put(target);
	if (r < 0)
		return complete(op, r);
	if (r)
		return complete(op, -EROFS);
	if (vz_set_empty() || (!covered(op->node) && !covered(op->newparent)))
		return VN_PASS;	/* no directory under either parent has a layer stack */
	return VN_PASS_WITH_POST;
}

/*
 * A directory moved between covered places: the stacks of everything
 * below it change (DESIGN section 3: a layer sits at its view path).
 */
static void rename_post(struct vn_filter *f, struct vn_op *op, void *post)
{
	if (op->error)
		return;
	bool exchange = op->in.rename.flags & RENAME_EXCHANGE;
	if (is_real_dir(op->newparent, op->newname) || (exchange && is_real_dir(op->node, op->name)))
		vz_moved();
}

static const struct vn_filter_handler handlers[] = {
	{ VN_OP_LOOKUP, lookup_pre, lookup_post },
	{ VN_OP_GETATTR, getattr_pre, NULL },
	{ VN_OP_SETATTR, readonly_pre, NULL },
	{ VN_OP_READLINK, readlink_pre, NULL },
	{ VN_OP_MKNOD, make_pre, NULL },
	{ VN_OP_MKDIR, make_pre, NULL },
	{ VN_OP_SYMLINK, make_pre, NULL },
	{ VN_OP_CREATE, make_pre, NULL },
	{ VN_OP_LINK, make_pre, NULL },
	{ VN_OP_UNLINK, remove_pre, NULL },
	{ VN_OP_RMDIR, remove_pre, NULL },
	{ VN_OP_RENAME, rename_pre, rename_post },
	{ VN_OP_OPEN, open_pre, NULL },
	{ VN_OP_READ, read_pre, NULL },
	{ VN_OP_WRITE, readonly_pre, NULL },
	{ VN_OP_FSYNC, sync_pre, NULL },
	{ VN_OP_OPENDIR, opendir_pre, NULL },
	{ VN_OP_READDIR, readdir_pre, readdir_post },
	{ VN_OP_FSYNCDIR, sync_pre, NULL },
	{ VN_OP_STATFS, statfs_pre, NULL },
	{ VN_OP_SETXATTR, readonly_pre, NULL },
	{ VN_OP_GETXATTR, xattr_pre, NULL },
	{ VN_OP_LISTXATTR, xattr_pre, NULL },
	{ VN_OP_REMOVEXATTR, readonly_pre, NULL },
	{ VN_OP_ACCESS, access_pre, NULL },
	{ VN_OP_FALLOCATE, readonly_pre, NULL },
	{ VN_OP_COPY_FILE_RANGE, copy_pre, NULL },
	{ VN_OP_LSEEK, lseek_pre, NULL },
	{ VN_OP_NONE, NULL, NULL },
};

static int node_origin(struct vn_filter *f, struct vn_node *node, char *buf, size_t size)
{
	struct vz_node *c = vnode(node);
	if (!c)
		return -ENOENT;
	int n = c->layer ? snprintf(buf, size, "layer %llu", (unsigned long long)c->layer->id)
			 : snprintf(buf, size, "synthesized");
	return n < 0 ? -EINVAL : n;
}

static int filter_attach(struct vn_filter *f, const char *args)
{
	self = f;
	int r = vz_ports_open(f);
	return r < 0 ? r : vz_attach_args(f, args);
}

static void filter_detach(struct vn_filter *f)
{
	vz_layers_clear();
}

const struct vn_filter_ops vz_filter_ops = {
	.api_version = VN_FILTER_API_VERSION,
	.size = sizeof(struct vn_filter_ops),
	.name = "virtualize",
	.altitude = 1000,
	/* its READ and WRITE handlers serve virtual files, which never pass through */
	.flags = VN_FILTER_OPENS_SKIPPABLE | VN_FILTER_DATA_SKIPPABLE |
		 VN_FILTER_PORTS_ANSWER_ONLY,
	.node_ctx_size = sizeof(struct vz_node),
	.file_ctx_size = sizeof(struct vz_file),
	.node_ctx_cleanup = node_cleanup,
	.file_ctx_cleanup = file_cleanup,
	.node_origin = node_origin,
	.attach = filter_attach,
	.detach = filter_detach,
	.handlers = handlers,
};
