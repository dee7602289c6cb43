/*
 * Directories: opendir, readdir(plus), releasedir.  READDIR at offset 0
 * lists the whole directory (through the filters, which so edit one
 * complete listing) and the kernel's further chunks are served from that
 * snapshot, kept in the open handle or, when the kernel skips directory
 * opens, in the node.  Offsets come from names (dir_snapshot.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/node_table.h"
#include "frontend/dir_snapshot.h"
#include "frontend/fuse_request.h"

static struct vn_file *file_of(struct fuse_file_info *fi)
{
	return (struct vn_file *)(uintptr_t)fi->fh;
}

static void finish_opendir(struct fm_call *c)
{
	struct request *r = (struct request *)c;
	struct vn_op *op = &c->op;
	if (op->error) {
		file_put(op->file);
		fuse_reply_err(r->req, -op->error);
	} else {
		r->fi.fh = (uint64_t)(uintptr_t)op->file;
		r->fi.cache_readdir = frontend.cfg.cache_readdir;
		r->fi.keep_cache = frontend.cfg.cache_readdir;
		if (fuse_reply_open(r->req, &r->fi) < 0)
			file_put(op->file);
	}
	request_free(r);
}

void fuse_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* ENOSYS once: the kernel then opens directories without asking */
	if (frontend.cfg.skip_opendirs) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	open_op(req, VN_OP_OPENDIR, ino, NULL, 0, fi, finish_opendir);
}

/*
 * Whether the kernel may be given ENTRY, just looked up, as its node
 * in a READDIRPLUS reply.  A directory the kernel already knows may have
 * its dentry elsewhere (moved by a rename, or a layer directory seen at a
 * name a moved real directory held); linking it here makes the kernel move
 * that alias with trylocks, and when one fails under a concurrent rename
 * the kernel's error path (fuse_direntplus_link) can forget the entry
 * twice: once in the inode's count, evicted in the meantime, and once
 * more by its forced FORGET.  The daemon would then free a node the kernel
 * still uses.  Such a directory is sent without its node (its attributes
 * come with the next LOOKUP); one that is new to the kernel has no alias,
 * and files are never moved between aliases.
 */
static bool plus_entry_safe(const struct fuse_entry_param *e, struct vn_node *entry)
{
	return !entry || !S_ISDIR(e->attr.st_mode) || node_table_lookups(frontend.nodes, entry) == 1;
}

/* A lookup dispatched from inside readdirplus, waited for in place. */
struct sync_lookup {
	struct request r;	/* first */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void finish_sync(struct fm_call *c)
{
	struct sync_lookup *s = (struct sync_lookup *)c;
	pthread_mutex_lock(&s->lock);
	s->done = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static int plus_lookup(fuse_req_t req, struct vn_node *dir, const char *name,
		       struct fuse_entry_param *e)
{
	struct sync_lookup s;
	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	request_init(&s.r, req, VN_OP_LOOKUP, ino_of(dir), finish_sync);
	s.r.call.op.name = name;
	fm_dispatch(&s.r.call);
	pthread_mutex_lock(&s.lock);
	while (!s.done)
		pthread_cond_wait(&s.cond, &s.lock);
	pthread_mutex_unlock(&s.lock);
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.lock);
	fm_call_end(&s.r.call);
	int r = s.r.call.op.error;
	if (r == 0) {
		fill_entry(&s.r.call.op, e);
		if (!plus_entry_safe(e, s.r.call.op.out.entry)) {
			node_table_forget(frontend.nodes, s.r.call.op.out.entry, 1);
			r = -EAGAIN;
		}
	}
	return r;
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}


/*
 * Where a directory's listing is kept between the kernel's chunks: in the
 * open handle, or, when the kernel lists without opening, in the node (a
 * newer listing replaces it; dir_snapshot.h says why offsets survive that).
 * The lock guards the two pointers; nothing blocks under it.
 */
static pthread_mutex_t listing_lock = PTHREAD_MUTEX_INITIALIZER;

static struct dir_snapshot **slot_of(struct vn_file *f, struct vn_node *node)
{
	return f ? &f->dir : &node->listing;
}

static struct dir_snapshot *listing_get(struct dir_snapshot **slot)
{
	pthread_mutex_lock(&listing_lock);
	struct dir_snapshot *s = dir_snapshot_get(*slot);
	pthread_mutex_unlock(&listing_lock);
	return s;
}

static void listing_set(struct dir_snapshot **slot, struct dir_snapshot *s)
{
	pthread_mutex_lock(&listing_lock);
	struct dir_snapshot *old = *slot;
	*slot = dir_snapshot_get(s);
	pthread_mutex_unlock(&listing_lock);
	dir_snapshot_put(old);
}

/* A node's listing is dropped once read to the end: nodes of walked trees keep none. */
static void listing_done(struct dir_snapshot **slot, struct dir_snapshot *s)
{
	pthread_mutex_lock(&listing_lock);
	bool mine = *slot == s;
	if (mine)
		*slot = NULL;
	pthread_mutex_unlock(&listing_lock);
	if (mine)
		dir_snapshot_put(s);
}

/*
 * Replies the entries after offset OFF that fit in SIZE bytes.  At the end,
 * the listing kept in DONE_SLOT (may be NULL) is dropped first: once the
 * reply is sent, nothing keeps a node the kernel lists without opening it
 * (the kernel may forget it at once), so the node is not touched after.
 */
static void reply_listing(fuse_req_t req, struct vn_node *node, struct dir_snapshot *s,
			  size_t size, off_t off, bool plus, struct dir_snapshot **done_slot)
{
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t pos = 0, i = dir_snapshot_seek(s, off);
	const struct vn_dirlist *list = s->list;
	bool end = i >= list->count;
	for (; i < list->count; i++) {
		const struct vn_dirent *d = &list->entries[i];
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		e.attr.st_ino = d->ino;
		e.attr.st_mode = d->type;
		if (!plus) {
			size_t n = fuse_add_direntry(req, buf + pos, size - pos, d->name, &e.attr,
						     s->offs[i]);
			if (n > size - pos)
				break;
			pos += n;
			continue;
		}
		size_t need = fuse_add_direntry_plus(req, NULL, 0, d->name, &e, s->offs[i]);
		if (need > size - pos)
			break;
		if (!is_dot_or_dotdot(d->name) && plus_lookup(req, node, d->name, &e) < 0) {
			/* vanished, unreadable or unsafe to link: a plain entry */
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = d->ino;
			e.attr.st_mode = d->type;
		}
		pos += fuse_add_direntry_plus(req, buf + pos, size - pos, d->name, &e, s->offs[i]);
	}
	if (end && done_slot)
		listing_done(done_slot, s);	/* the caller still holds S */
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void serve(fuse_req_t req, struct vn_file *f, struct vn_node *node,
		  struct dir_snapshot *s, size_t size, off_t off, bool plus)
{
	reply_listing(req, node, s, size, off, plus, f ? NULL : &node->listing);
}

static void finish_readdir(struct fm_call *c)
{
	struct request *r = (struct request *)c;
	struct vn_op *op = &c->op;
	struct dir_snapshot *s = NULL;
	if (op->error) {
		dirlist_free(op->out.dir);
		fuse_reply_err(r->req, -op->error);
	} else if (!(s = dir_snapshot_new(op->out.dir))) {
		fuse_reply_err(r->req, ENOMEM);
	} else {
		listing_set(slot_of(op->file, op->node), s);
		serve(r->req, op->file, op->node, s, r->size, r->offset, r->plus);
		dir_snapshot_put(s);
	}
	op->out.dir = NULL;
	request_free(r);
}

/*
 * Offset 0 lists the directory afresh (through the filters); later chunks
 * come from the kept listing, or from a fresh one when none is kept.
 */
static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi, bool plus)
{
	struct vn_file *f = file_of(fi);
	if (off != 0) {
		struct vn_node *node = f ? f->node : node_of(ino);
		struct dir_snapshot *s = listing_get(slot_of(f, node));
		if (s) {
			serve(req, f, node, s, size, off, plus);
			dir_snapshot_put(s);
			return;
		}
	}
	struct request *r = request_new(req, VN_OP_READDIR, ino, finish_readdir);
	if (!r)
		return;
	request_use_file(r, fi);
	r->call.op.out.dir = calloc(1, sizeof(struct vn_dirlist));
	if (!r->call.op.out.dir) {
		fuse_reply_err(req, ENOMEM);
		request_free(r);
		return;
	}
	r->size = size;
	r->offset = off;
	r->plus = plus;
	request_dispatch(r);
}

void fuse_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, false);
}

void fuse_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, true);
}

void fuse_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	release_op(req, VN_OP_RELEASEDIR, ino, fi);
}
