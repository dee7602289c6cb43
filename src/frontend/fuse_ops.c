/*
 * FUSE low-level handlers: request -> struct vn_op -> filter manager ->
 * reply.  Every handler creates one request; its finish function is the one
 * place that replies, exactly once, from whatever thread completed the op.
 * Readdir handlers live in fuse_readdir.c.
 */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "core/filter_manager.h"
#include "core/node_table.h"
#include "frontend/dir_snapshot.h"
#include "frontend/fuse_request.h"
#include "frontend/passthrough.h"
#include "frontend/wire.h"

struct frontend frontend;

void frontend_init(struct node_table *nodes, const struct frontend_config *cfg)
{
	frontend.nodes = nodes;
	frontend.cfg = *cfg;
}

struct vn_node *node_of(fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return node_table_root(frontend.nodes);
	return (struct vn_node *)(uintptr_t)ino;
}

fuse_ino_t ino_of(struct vn_node *node)
{
	if (node == node_table_root(frontend.nodes))
		return FUSE_ROOT_ID;
	return (fuse_ino_t)(uintptr_t)node;
}

/* ---- requests ---- */

static char *keep_string(struct request *r, const char *s)
{
	if (!s || !fm_call_handles(&r->call, r->call.op.opcode))
		return (char *)s;
	/* a filter may pend the op: the kernel's buffer dies when the handler returns */
	for (int i = 0; i < 3; i++) {
		if (!r->owned[i]) {
			r->owned[i] = strdup(s);
			return r->owned[i] ? r->owned[i] : (char *)s;
		}
	}
	return (char *)s;
}

void request_init(struct request *r, fuse_req_t req, enum vn_opcode opc, fuse_ino_t ino,
		  fm_finish_fn *finish)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	r->req = req;
	r->call.finish = finish;
	struct vn_op *op = &r->call.op;
	op->opcode = opc;
	op->node = node_of(ino);
	op->caller.pid = ctx->pid;
	op->caller.uid = ctx->uid;
	op->caller.gid = ctx->gid;
	op->caller.umask = ctx->umask;
	op->caller.ngroups = -1;
	op->out.attr_timeout = -1;
	op->out.entry_timeout = -1;
	op->out.keep_cache = -1;
	fm_call_begin(&r->call);
}

struct request *request_new(fuse_req_t req, enum vn_opcode opc, fuse_ino_t ino,
			    fm_finish_fn *finish)
{
	struct request *r = calloc(1, sizeof(*r));
	if (!r) {
		fuse_reply_err(req, ENOMEM);
		return NULL;
	}
	request_init(r, req, opc, ino, finish);
	return r;
}

void request_free(struct request *r)
{
	if (r->holds_file)
		file_put(r->call.op.file);
	if (r->holds_file_out)
		file_put(r->call.op.in.copy.file_out);
	for (int i = 0; i < 3; i++)
		free(r->owned[i]);
	free(r->call.op.out.link);
	free(r->call.op.out.xattr);
	free(r->call.op.out.data.buf);
	free(r->wbuf);
	/* last: an unload waits for this, and the file's contexts may be its filter's */
	fm_call_end(&r->call);
	free(r);
}

static struct request *req_of(struct fm_call *c)
{
	return (struct request *)c;
}

/*
 * libfuse calls this holding the request's lock, which the reply path
 * takes (disarm) before it replies: the request stays alive meanwhile.
 */
static void on_interrupt(fuse_req_t req, void *call)
{
	fm_call_interrupt(call);
}

static void disarm(struct fm_call *c)
{
	fuse_req_interrupt_func(req_of(c)->req, NULL, NULL);
}

void request_dispatch(struct request *r)
{
	/* only a filter that hears of cancels may pend the call until the application gives up */
	if (fm_call_handles(&r->call, r->call.op.opcode) && fm_call_cancellable(&r->call)) {
		r->call.disarm = disarm;
		fuse_req_interrupt_func(r->req, on_interrupt, &r->call);
	}
	fm_dispatch(&r->call);
}

static void finish_err(struct fm_call *c)
{
	struct request *r = req_of(c);
	fuse_reply_err(r->req, -c->op.error);
	request_free(r);
}

/* ---- open files ---- */

static void file_destroy(struct vn_file *f);

/* Every open file, so those still open when the daemon stops are released too. */
static pthread_mutex_t files_lock = PTHREAD_MUTEX_INITIALIZER;	/* leaf */
static struct vn_file *files;

struct vn_file *file_new(struct vn_node *node)
{
	struct vn_file *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->refs = 1;
	f->node = node;
	f->fd = -1;
	node_ref(frontend.nodes, node);
	pthread_mutex_lock(&files_lock);
	f->next = files;
	if (files)
		files->prev = f;
	files = f;
	pthread_mutex_unlock(&files_lock);
	return f;
}

void frontend_each_file(void (*fn)(struct vn_file *f, void *arg), void *arg)
{
	pthread_mutex_lock(&files_lock);
	for (struct vn_file *f = files; f; f = f->next)
		fn(f, arg);
	pthread_mutex_unlock(&files_lock);
}

void frontend_release_all(void)
{
	pthread_mutex_lock(&files_lock);
	struct vn_file *f = files;
	files = NULL;
	pthread_mutex_unlock(&files_lock);
	while (f) {
		struct vn_file *next = f->next;
		f->prev = f->next = NULL;
		file_destroy(f);
		f = next;
	}
}

static void file_destroy(struct vn_file *f)
{
	pthread_mutex_lock(&files_lock);
	if (f->prev)
		f->prev->next = f->next;
	else if (files == f)
		files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	pthread_mutex_unlock(&files_lock);
	passthrough_release(f);
	if (f->fd >= 0)
		close(f->fd);
	fm_free_file_contexts(f->filter_ctx);
	dir_snapshot_put(f->dir);
	node_unref(frontend.nodes, f->node);
	free(f);
}

struct vn_file *file_get(struct fuse_file_info *fi)
{
	struct vn_file *f = fi ? (struct vn_file *)(uintptr_t)fi->fh : NULL;
	if (f)
		__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
	return f;
}

/* One more reference on a file the caller already holds one on. */
static void file_hold(struct vn_file *f)
{
	__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
}

void file_put(struct vn_file *f)
{
	if (f && __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0)
		file_destroy(f);
}

/* ---- entries ---- */

void fill_entry(const struct vn_op *op, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = ino_of(op->out.entry);
	e->attr = op->out.attr;
	e->attr_timeout = op->out.attr_timeout >= 0 ? op->out.attr_timeout : frontend.cfg.attr_timeout;
	e->entry_timeout =
		op->out.entry_timeout >= 0 ? op->out.entry_timeout : frontend.cfg.entry_timeout;
}

static void finish_entry(struct fm_call *c)
{
	struct request *r = req_of(c);
	struct vn_op *op = &c->op;
	struct fuse_entry_param e;
	if (op->error == -ENOENT && op->opcode == VN_OP_LOOKUP && frontend.cfg.negative_timeout > 0) {
		memset(&e, 0, sizeof(e));
		e.entry_timeout = frontend.cfg.negative_timeout;
		fuse_reply_entry(r->req, &e);
	} else if (op->error) {
		fuse_reply_err(r->req, -op->error);
	} else {
		fill_entry(op, &e);
		if (fuse_reply_entry(r->req, &e) < 0)
			node_table_forget(frontend.nodes, op->out.entry, 1);
	}
	request_free(r);
}

static void fuse_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct request *r = request_new(req, VN_OP_LOOKUP, parent, finish_entry);
	if (!r)
		return;
	r->call.op.name = keep_string(r, name);
	request_dispatch(r);
}

static void fuse_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_table_forget(frontend.nodes, node_of(ino), nlookup);
	fuse_reply_none(req);
}

static void fuse_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		node_table_forget(frontend.nodes, node_of(forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void finish_attr(struct fm_call *c)
{
	struct request *r = req_of(c);
	struct vn_op *op = &c->op;
	if (op->error)
		fuse_reply_err(r->req, -op->error);
	else
		fuse_reply_attr(r->req, &op->out.attr,
				op->out.attr_timeout >= 0 ? op->out.attr_timeout
							  : frontend.cfg.attr_timeout);
	request_free(r);
}

/* NULL also for fh 0: files the kernel opened without asking (skipped opens). */
static struct vn_file *file_of(struct fuse_file_info *fi)
{
	return fi ? (struct vn_file *)(uintptr_t)fi->fh : NULL;
}

/* The request's file, with a reference held until the request is freed. */
void request_use_file(struct request *r, struct fuse_file_info *fi)
{
	r->call.op.file = file_get(fi);
	r->holds_file = r->call.op.file != NULL;
}

static void fuse_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct request *r = request_new(req, VN_OP_GETATTR, ino, finish_attr);
	if (!r)
		return;
	request_use_file(r, fi);
	request_dispatch(r);
}

static int setattr_flags(int to_set)
{
	static const struct { int fuse, vn; } map[] = {
		{ FUSE_SET_ATTR_MODE, VN_SET_MODE },   { FUSE_SET_ATTR_UID, VN_SET_UID },
		{ FUSE_SET_ATTR_GID, VN_SET_GID },     { FUSE_SET_ATTR_SIZE, VN_SET_SIZE },
		{ FUSE_SET_ATTR_ATIME, VN_SET_ATIME }, { FUSE_SET_ATTR_MTIME, VN_SET_MTIME },
		{ FUSE_SET_ATTR_ATIME_NOW, VN_SET_ATIME_NOW },
		{ FUSE_SET_ATTR_MTIME_NOW, VN_SET_MTIME_NOW },
		{ FUSE_SET_ATTR_CTIME, VN_SET_CTIME },
		/* the kernel's FATTR_KILL_SUIDGID has FUSE_SET_ATTR_KILL_SUID's bit, and libfuse keeps it */
		{ FUSE_SET_ATTR_KILL_SUID, VN_SET_KILL_SUIDGID },
	};
	int v = 0;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (to_set & map[i].fuse)
			v |= map[i].vn;
	return v;
}

static void fuse_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			    struct fuse_file_info *fi)
{
	struct request *r = request_new(req, VN_OP_SETATTR, ino, finish_attr);
	if (!r)
		return;
	request_use_file(r, fi);
	r->call.op.in.setattr.attr = *attr;
	r->call.op.in.setattr.valid = setattr_flags(to_set);
	/*
	 * Under killpriv v2 a SETATTR that sets nothing is a chown(2) to the
	 * same owner and group, which still clears setuid/setgid: the kernel
	 * sends FATTR_KILL_SUIDGID only with a new owner or group.
	 */
	if (r->call.op.in.setattr.valid == 0 && wire_killpriv())
		r->call.op.in.setattr.valid = VN_SET_KILL_SUIDGID;
	request_dispatch(r);
}

static void finish_readlink(struct fm_call *c)
{
	struct request *r = req_of(c);
	if (c->op.error)
		fuse_reply_err(r->req, -c->op.error);
	else
		fuse_reply_readlink(r->req, c->op.out.link);
	request_free(r);
}

static void fuse_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct request *r = request_new(req, VN_OP_READLINK, ino, finish_readlink);
	if (r)
		request_dispatch(r);
}

/* A setgid bit on a new object is kept only if the caller is in its group. */
static void read_groups_for_setgid(struct request *r, mode_t mode)
{
	if (!(mode & S_ISGID))
		return;
	struct vn_caller *c = &r->call.op.caller;
	int n = fuse_req_getgroups(r->req, VN_CALLER_MAX_GROUPS, c->groups);
	c->ngroups = n >= 0 && n <= VN_CALLER_MAX_GROUPS ? n : -1;
}

static void make_node(fuse_req_t req, enum vn_opcode opc, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev, const char *target)
{
	struct request *r = request_new(req, opc, parent, finish_entry);
	if (!r)
		return;
	r->call.op.name = keep_string(r, name);
	if (opc == VN_OP_SYMLINK) {
		r->call.op.in.symlink.target = keep_string(r, target);
	} else {
		r->call.op.in.make.mode = mode;
		r->call.op.in.make.rdev = rdev;
		read_groups_for_setgid(r, mode);
	}
	request_dispatch(r);
}

static void fuse_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			  dev_t rdev)
{
	make_node(req, VN_OP_MKNOD, parent, name, mode, rdev, NULL);
}

static void fuse_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_node(req, VN_OP_MKDIR, parent, name, mode | S_IFDIR, 0, NULL);
}

static void fuse_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	make_node(req, VN_OP_SYMLINK, parent, name, S_IFLNK | 0777, 0, link);
}

static void name_op(fuse_req_t req, enum vn_opcode opc, fuse_ino_t parent, const char *name)
{
	struct request *r = request_new(req, opc, parent, finish_err);
	if (!r)
		return;
	r->call.op.name = keep_string(r, name);
	request_dispatch(r);
}

static void fuse_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	name_op(req, VN_OP_UNLINK, parent, name);
}

static void fuse_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	name_op(req, VN_OP_RMDIR, parent, name);
}

static void fuse_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			   fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct request *r = request_new(req, VN_OP_RENAME, parent, finish_err);
	if (!r)
		return;
	r->call.op.name = keep_string(r, name);
	r->call.op.newparent = node_of(newparent);
	r->call.op.newname = keep_string(r, newname);
	r->call.op.in.rename.flags = flags;
	request_dispatch(r);
}

static void fuse_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct request *r = request_new(req, VN_OP_LINK, ino, finish_entry);
	if (!r)
		return;
	r->call.op.newparent = node_of(newparent);
	r->call.op.newname = keep_string(r, newname);
	request_dispatch(r);
}

/* ---- open, create, release ---- */

/* Also decides whether the kernel serves the file itself (passthrough.c). */
static void set_open_reply(struct request *r)
{
	struct vn_op *op = &r->call.op;
	r->fi.fh = (uint64_t)(uintptr_t)op->file;
	passthrough_choose(op->file);
	bool keep = op->out.keep_cache >= 0 ? op->out.keep_cache : frontend.cfg.keep_cache;
	r->fi.keep_cache = passthrough_keep_cache(op->file, keep);
	r->fi.noflush = !fm_call_handles(&r->call, VN_OP_FLUSH);
	r->fi.direct_io = 0;
}

static void finish_open(struct fm_call *c)
{
	struct request *r = req_of(c);
	struct vn_op *op = &c->op;
	if (op->error) {
		file_put(op->file);
		fuse_reply_err(r->req, -op->error);
	} else {
		set_open_reply(r);
		file_hold(op->file);	/* once replied, the kernel may release it at once */
		bool sent = fuse_reply_open(r->req, &r->fi) == 0;
		passthrough_reply_sent(op->file, sent);
		if (!sent)
			file_put(op->file);
		file_put(op->file);
	}
	request_free(r);
}

static void finish_create(struct fm_call *c)
{
	struct request *r = req_of(c);
	struct vn_op *op = &c->op;
	if (op->error) {
		file_put(op->file);
		fuse_reply_err(r->req, -op->error);
	} else {
		struct fuse_entry_param e;
		fill_entry(op, &e);
		/* the open file is of the new node, not of the directory it was made in */
		if (op->out.entry && op->file->node != op->out.entry) {
			node_ref(frontend.nodes, op->out.entry);
			node_unref(frontend.nodes, op->file->node);
			op->file->node = op->out.entry;
		}
		set_open_reply(r);
		/*
		 * When opens are skipped the kernel never releases a created
		 * file either: keep no handle (its reads and writes then take a
		 * descriptor per call), or its descriptor would stay open, and a
		 * deleted file's space taken, until unmount.
		 */
		struct vn_file *keep = op->file;
		if (frontend.cfg.skip_opens) {
			r->fi.fh = 0;
			keep = NULL;
		}
		file_hold(op->file);	/* once replied, the kernel may release it at once */
		bool sent = fuse_reply_create(r->req, &e, &r->fi) == 0;
		passthrough_reply_sent(op->file, sent && keep);
		if (!sent) {
			node_table_forget(frontend.nodes, op->out.entry, 1);
			keep = NULL;
		}
		if (keep != op->file)
			file_put(op->file);
		file_put(op->file);
	}
	request_free(r);
}

void open_op(fuse_req_t req, enum vn_opcode opc, fuse_ino_t ino, const char *name, mode_t mode,
	     struct fuse_file_info *fi, fm_finish_fn *finish)
{
	struct request *r = request_new(req, opc, ino, finish);
	if (!r)
		return;
	r->fi = *fi;
	r->call.op.file = file_new(r->call.op.node);
	if (!r->call.op.file) {
		fuse_reply_err(req, ENOMEM);
		request_free(r);
		return;
	}
	r->call.op.file->flags = fi->flags;
	r->call.op.name = keep_string(r, name);
	r->call.op.in.open.flags = fi->flags;
	r->call.op.in.open.mode = mode;
	r->call.op.in.open.kill_suidgid = wire_kills_suidgid();
	if (vn_opcode_facts(opc) & VN_OPF_CREATES)
		read_groups_for_setgid(r, mode);
	request_dispatch(r);
}

static void fuse_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* ENOSYS once: the kernel then opens files without asking (FUSE_CAP_NO_OPEN_SUPPORT) */
	if (frontend.cfg.skip_opens) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	open_op(req, VN_OP_OPEN, ino, NULL, 0, fi, finish_open);
}

static void fuse_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			   struct fuse_file_info *fi)
{
	open_op(req, VN_OP_CREATE, parent, name, mode, fi, finish_create);
}

/* RELEASE and RELEASEDIR: the request uses the kernel's reference and drops it. */
static void finish_release(struct fm_call *c)
{
	struct request *r = req_of(c);
	fuse_reply_err(r->req, 0);
	file_put(c->op.file);
	request_free(r);
}

void release_op(fuse_req_t req, enum vn_opcode opc, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (!fi->fh) {	/* a file the kernel opened without asking: nothing to release */
		fuse_reply_err(req, 0);
		return;
	}
	struct request *r = request_new(req, opc, ino, finish_release);
	if (!r)
		return;
	r->call.op.file = file_of(fi);
	request_dispatch(r);
}

static void fuse_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	release_op(req, VN_OP_RELEASE, ino, fi);
}

static void fuse_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct request *r = request_new(req, VN_OP_FLUSH, ino, finish_err);
	if (!r)
		return;
	request_use_file(r, fi);
	request_dispatch(r);
}

static void sync_op(fuse_req_t req, enum vn_opcode opc, fuse_ino_t ino, int datasync,
		    struct fuse_file_info *fi)
{
	struct request *r = request_new(req, opc, ino, finish_err);
	if (!r)
		return;
	request_use_file(r, fi);
	r->call.op.in.fsync.datasync = datasync;
	request_dispatch(r);
}

static void fuse_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	sync_op(req, VN_OP_FSYNC, ino, datasync, fi);
}

static void fuse_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	sync_op(req, VN_OP_FSYNCDIR, ino, datasync, fi);
}

/* ---- data ---- */

static void finish_read(struct fm_call *c)
{
	struct request *r = req_of(c);
	struct vn_read_data *d = &c->op.out.data;
	if (c->op.error) {
		fuse_reply_err(r->req, -c->op.error);
	} else if (d->buf || d->fd < 0) {
		fuse_reply_buf(r->req, d->buf, d->buf ? d->size : 0);
	} else {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(d->size);
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = d->fd;
		bv.buf[0].pos = d->fd_offset;
		fuse_reply_data(r->req, &bv, FUSE_BUF_SPLICE_MOVE);
	}
	request_free(r);
}

static void fuse_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi)
{
	struct request *r = request_new(req, VN_OP_READ, ino, finish_read);
	if (!r)
		return;
	request_use_file(r, fi);
	r->call.op.in.read.offset = off;
	r->call.op.in.read.size = size;
	r->call.op.out.data.fd = -1;
	request_dispatch(r);
}

static void finish_count(struct fm_call *c)
{
	struct request *r = req_of(c);
	if (c->op.error)
		fuse_reply_err(r->req, -c->op.error);
	else
		fuse_reply_write(r->req, c->op.out.count);
	request_free(r);
}

static void fuse_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	struct request *r = request_new(req, VN_OP_WRITE, ino, finish_count);
	if (!r)
		return;
	request_use_file(r, fi);
	r->call.op.in.write.offset = off;
	r->call.op.in.write.size = size;
	r->call.op.in.write.buf = buf;
	r->call.op.in.write.fd = -1;
	r->call.op.in.write.kill_suidgid = wire_kills_suidgid();
	if (fm_call_handles(&r->call, VN_OP_WRITE)) {
		r->wbuf = malloc(size ? size : 1);
		if (!r->wbuf) {
			fuse_reply_err(req, ENOMEM);
			request_free(r);
			return;
		}
		memcpy(r->wbuf, buf, size);
		r->call.op.in.write.buf = r->wbuf;
	}
	request_dispatch(r);
}

static void fuse_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			      off_t length, struct fuse_file_info *fi)
{
	struct request *r = request_new(req, VN_OP_FALLOCATE, ino, finish_err);
	if (!r)
		return;
	request_use_file(r, fi);
	r->call.op.in.fallocate.mode = mode;
	r->call.op.in.fallocate.offset = offset;
	r->call.op.in.fallocate.length = length;
	r->call.op.in.fallocate.kill_suidgid = wire_killpriv();
	request_dispatch(r);
}

static void fuse_op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
				    struct fuse_file_info *fi_in, fuse_ino_t ino_out,
				    off_t off_out, struct fuse_file_info *fi_out, size_t len,
				    int flags)
{
	struct request *r = request_new(req, VN_OP_COPY_FILE_RANGE, ino_in, finish_count);
	if (!r)
		return;
	request_use_file(r, fi_in);
	r->call.op.in.copy.file_out = file_get(fi_out);
	r->holds_file_out = r->call.op.in.copy.file_out != NULL;
	r->call.op.in.copy.node_out = node_of(ino_out);
	r->call.op.in.copy.off_in = off_in;
	r->call.op.in.copy.off_out = off_out;
	r->call.op.in.copy.len = len;
	r->call.op.in.copy.flags = flags;
	r->call.op.in.copy.kill_suidgid = wire_killpriv();
	request_dispatch(r);
}

static void finish_lseek(struct fm_call *c)
{
	struct request *r = req_of(c);
	if (c->op.error)
		fuse_reply_err(r->req, -c->op.error);
	else
		fuse_reply_lseek(r->req, c->op.out.offset);
	request_free(r);
}

static void fuse_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
			  struct fuse_file_info *fi)
{
	struct request *r = request_new(req, VN_OP_LSEEK, ino, finish_lseek);
	if (!r)
		return;
	request_use_file(r, fi);
	r->call.op.in.lseek.offset = off;
	r->call.op.in.lseek.whence = whence;
	request_dispatch(r);
}

/* ---- filesystem, xattrs, access ---- */

static void finish_statfs(struct fm_call *c)
{
	struct request *r = req_of(c);
	if (c->op.error)
		fuse_reply_err(r->req, -c->op.error);
	else
		fuse_reply_statfs(r->req, &c->op.out.statfs);
	request_free(r);
}

static void fuse_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct request *r = request_new(req, VN_OP_STATFS, ino, finish_statfs);
	if (r)
		request_dispatch(r);
}

static void finish_xattr(struct fm_call *c)
{
	struct request *r = req_of(c);
	struct vn_op *op = &c->op;
	if (op->error)
		fuse_reply_err(r->req, -op->error);
	else if (op->in.getxattr.size == 0)
		fuse_reply_xattr(r->req, op->out.xattr_size);
	else if (op->out.xattr_size > op->in.getxattr.size)
		fuse_reply_err(r->req, ERANGE);
	else
		fuse_reply_buf(r->req, op->out.xattr, op->out.xattr_size);
	request_free(r);
}

static void fuse_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct request *r = request_new(req, VN_OP_GETXATTR, ino, finish_xattr);
	if (!r)
		return;
	r->call.op.name = keep_string(r, name);
	r->call.op.in.getxattr.size = size;
	request_dispatch(r);
}

static void fuse_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct request *r = request_new(req, VN_OP_LISTXATTR, ino, finish_xattr);
	if (!r)
		return;
	r->call.op.in.getxattr.size = size;
	request_dispatch(r);
}

static void fuse_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			     size_t size, int flags)
{
	struct request *r = request_new(req, VN_OP_SETXATTR, ino, finish_err);
	if (!r)
		return;
	r->call.op.name = keep_string(r, name);
	r->call.op.in.setxattr.value = value;
	if (fm_call_handles(&r->call, VN_OP_SETXATTR)) {
		r->wbuf = malloc(size ? size : 1);
		if (!r->wbuf) {
			fuse_reply_err(req, ENOMEM);
			request_free(r);
			return;
		}
		memcpy(r->wbuf, value, size);
		r->call.op.in.setxattr.value = r->wbuf;
	}
	r->call.op.in.setxattr.size = size;
	r->call.op.in.setxattr.flags = flags;
	request_dispatch(r);
}

static void fuse_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	name_op(req, VN_OP_REMOVEXATTR, ino, name);
}

static void fuse_op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct request *r = request_new(req, VN_OP_ACCESS, ino, finish_err);
	if (!r)
		return;
	r->call.op.in.access.mask = mask;
	request_dispatch(r);
}

static void fuse_op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	frontend_conn_init(conn);
}

static const struct fuse_lowlevel_ops ops = {
	.init = fuse_op_init,
	.lookup = fuse_op_lookup,
	.forget = fuse_op_forget,
	.forget_multi = fuse_op_forget_multi,
	.getattr = fuse_op_getattr,
	.setattr = fuse_op_setattr,
	.readlink = fuse_op_readlink,
	.mknod = fuse_op_mknod,
	.mkdir = fuse_op_mkdir,
	.unlink = fuse_op_unlink,
	.rmdir = fuse_op_rmdir,
	.symlink = fuse_op_symlink,
	.rename = fuse_op_rename,
	.link = fuse_op_link,
	.open = fuse_op_open,
	.create = fuse_op_create,
	.read = fuse_op_read,
	.write = fuse_op_write,
	.flush = fuse_op_flush,
	.release = fuse_op_release,
	.fsync = fuse_op_fsync,
	.opendir = fuse_op_opendir,
	.readdir = fuse_op_readdir,
	.readdirplus = fuse_op_readdirplus,
	.releasedir = fuse_op_releasedir,
	.fsyncdir = fuse_op_fsyncdir,
	.statfs = fuse_op_statfs,
	.setxattr = fuse_op_setxattr,
	.getxattr = fuse_op_getxattr,
	.listxattr = fuse_op_listxattr,
	.removexattr = fuse_op_removexattr,
	.access = fuse_op_access,
	.fallocate = fuse_op_fallocate,
	.copy_file_range = fuse_op_copy_file_range,
	.lseek = fuse_op_lseek,
};

const struct fuse_lowlevel_ops *frontend_ops(void)
{
	return &ops;
}
