/* Name and attribute operations on the real tree. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lower/lower_internal.h"

#define T (lower_ctx.nodes)

static void op_lookup(struct vn_op *op, int pfd)
{
	op->error = lower_entry_from_name(op, op->node, pfd, op->name, false);
}

/* The node's attributes as the answer: its mode noted, st_ino as the kernel sees it. */
static void answer_stat(struct vn_op *op, struct stat *st)
{
	node_table_set_mode(T, op->node, st->st_mode);
	lower_fix_stat(st);
	op->out.attr = *st;
}

static int stat_node(struct vn_op *op, int fd)
{
	struct stat st;
	int r;
	if (op->file && op->file->fd >= 0)
		r = fstat(op->file->fd, &st);
	else
		r = fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return -errno;
	answer_stat(op, &st);
	return 0;
}

static int set_times(struct vn_op *op, int fd)
{
	int valid = op->in.setattr.valid;
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
	if (valid & VN_SET_ATIME_NOW)
		ts[0].tv_nsec = UTIME_NOW;
	else if (valid & VN_SET_ATIME)
		ts[0] = op->in.setattr.attr.st_atim;
	if (valid & VN_SET_MTIME_NOW)
		ts[1].tv_nsec = UTIME_NOW;
	else if (valid & VN_SET_MTIME)
		ts[1] = op->in.setattr.attr.st_mtim;
	int r;
	if (op->file && op->file->fd >= 0) {
		r = futimens(op->file->fd, ts);
	} else if (S_ISLNK(vn_node_mode(op->node))) {
		r = utimensat(fd, "", ts, AT_EMPTY_PATH);
	} else {
		char p[PROC_FD_PATH_MAX];
		r = utimensat(AT_FDCWD, proc_fd_path(p, fd), ts, 0);
	}
	return r < 0 ? -errno : 0;
}

static int set_attrs(struct vn_op *op, int fd)
{
	int valid = op->in.setattr.valid;
	const struct stat *a = &op->in.setattr.attr;
	char p[PROC_FD_PATH_MAX];
	int ffd = op->file ? op->file->fd : -1;
	if (valid == VN_SET_KILL_SUIDGID) {	/* chown(2) to the same owner: the real one clears them */
		if (fchownat(fd, "", (uid_t)-1, (gid_t)-1, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		return 0;
	}
	if (valid & VN_SET_MODE) {
		if ((ffd >= 0 ? fchmod(ffd, a->st_mode) : chmod(proc_fd_path(p, fd), a->st_mode)) < 0)
			return -errno;
	}
	if (valid & (VN_SET_UID | VN_SET_GID)) {
		uid_t uid = (valid & VN_SET_UID) ? a->st_uid : (uid_t)-1;
		gid_t gid = (valid & VN_SET_GID) ? a->st_gid : (gid_t)-1;
		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	if (valid & VN_SET_SIZE) {
		if ((ffd >= 0 ? ftruncate(ffd, a->st_size) : truncate(proc_fd_path(p, fd), a->st_size)) < 0)
			return -errno;
		/* a chown clears them itself (even the daemon's); a truncate as root does not */
		if ((valid & (VN_SET_KILL_SUIDGID | VN_SET_MODE)) == VN_SET_KILL_SUIDGID) {
			int r = creds_kill_suidgid(ffd >= 0 ? ffd : fd, NULL);
			if (r < 0)
				return r;
		}
	}
	if (valid & (VN_SET_ATIME | VN_SET_MTIME | VN_SET_ATIME_NOW | VN_SET_MTIME_NOW))
		return set_times(op, fd);
	return 0;
}

static void op_readlink(struct vn_op *op, int fd)
{
	char *buf = malloc(PATH_MAX + 1);
	if (!buf) {
		op->error = -ENOMEM;
		return;
	}
	ssize_t n = readlinkat(fd, "", buf, PATH_MAX + 1);
	if (n < 0) {
		op->error = -errno;
		free(buf);
		return;
	}
	if (n > PATH_MAX) {
		op->error = -ENAMETOOLONG;
		free(buf);
		return;
	}
	buf[n] = '\0';
	op->out.link = buf;
}

static void op_make(struct vn_op *op, int pfd)
{
	int r;
	creds_enter(&op->caller);
	switch (op->opcode) {
	case VN_OP_MKDIR:
		r = mkdirat(pfd, op->name, op->in.make.mode);
		break;
	case VN_OP_SYMLINK:
		r = symlinkat(op->in.symlink.target, pfd, op->name);
		break;
	default:
		r = mknodat(pfd, op->name, op->in.make.mode, op->in.make.rdev);
		break;
	}
	r = r < 0 ? -errno : 0;
	creds_leave();
	if (r == 0)
		r = lower_entry_from_name(op, op->node, pfd, op->name, true);
	op->error = r;
}

/*
 * The node the kernel may hold for NAME in PFD is about to lose that name:
 * pin its descriptor so it stays reachable.  Returns the node with a
 * reference, or NULL when the kernel holds none.
 */
static struct vn_node *pin_victim(int pfd, const char *name)
{
	struct stat st;
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return NULL;
	struct vn_node *n = node_table_find(T, st.st_dev, st.st_ino);
	if (n)
		(void)node_table_pin(T, n);
	return n;
}

static void op_remove(struct vn_op *op, int pfd)
{
	struct vn_node *victim = pin_victim(pfd, op->name);
	int flags = op->opcode == VN_OP_RMDIR ? AT_REMOVEDIR : 0;
	op->error = unlinkat(pfd, op->name, flags) < 0 ? -errno : 0;
	if (victim) {
		if (op->error == 0)
			node_table_clear_name(T, victim);
		else
			node_table_unpin(T, victim);
		node_unref(T, victim);
	}
}

static void op_rename(struct vn_op *op, int pfd)
{
	int npfd;
	op->error = node_fd_get(T, op->newparent, &npfd);
	if (op->error)
		return;
	unsigned int flags = op->in.rename.flags;
	struct vn_node *src = NULL, *dst = NULL;
	struct stat st;
	if (fstatat(pfd, op->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		src = node_table_find(T, st.st_dev, st.st_ino);
	if (flags & RENAME_EXCHANGE) {
		if (fstatat(npfd, op->newname, &st, AT_SYMLINK_NOFOLLOW) == 0)
			dst = node_table_find(T, st.st_dev, st.st_ino);
	} else if (!(flags & RENAME_NOREPLACE)) {
		dst = pin_victim(npfd, op->newname);
	}
	if (dst == src && dst) {
		node_unref(T, dst);
		dst = NULL;	/* two names of one inode: rename does nothing */
	}
	op->error = renameat2(pfd, op->name, npfd, op->newname, flags) < 0 ? -errno : 0;
	if (op->error == 0) {
		if (src)
			node_table_set_name(T, src, op->newparent, op->newname);
		if (dst && (flags & RENAME_EXCHANGE))
			node_table_set_name(T, dst, op->node, op->name);
		else if (dst)
			node_table_clear_name(T, dst);
	} else if (dst && !(flags & RENAME_EXCHANGE)) {
		node_table_unpin(T, dst);
	}
	node_unref(T, src);
	node_unref(T, dst);
	node_fd_put(T, op->newparent);
}

static void op_link(struct vn_op *op, int fd)
{
	int npfd;
	op->error = node_fd_get(T, op->newparent, &npfd);
	if (op->error)
		return;
	char p[PROC_FD_PATH_MAX];
	if (linkat(AT_FDCWD, proc_fd_path(p, fd), npfd, op->newname, AT_SYMLINK_FOLLOW) < 0)
		op->error = -errno;
	else
		op->error = lower_entry_from_name(op, op->newparent, npfd, op->newname, false);
	node_fd_put(T, op->newparent);
}

static void op_access(struct vn_op *op, int fd)
{
	char p[PROC_FD_PATH_MAX];
	if (faccessat(AT_FDCWD, proc_fd_path(p, fd), op->in.access.mask, AT_EACCESS) < 0)
		op->error = -errno;
}

/*
 * GETATTR without an open file: one fstatat through the node's cached
 * descriptor or, without one, by name from its parent's.  Returns false
 * when the caller must take the node's descriptor (reopening it by name)
 * as for any operation.
 */
static bool getattr_cached(struct vn_op *op)
{
	if (op->opcode != VN_OP_GETATTR || (op->file && op->file->fd >= 0))
		return false;
	struct stat st;
	int r = node_table_stat(T, op->node, &st);
	if (r == -EAGAIN)
		return false;
	op->error = r;
	if (r == 0)
		answer_stat(op, &st);
	return true;
}

void lower_entry_op(struct vn_op *op)
{
	int fd;
	if (getattr_cached(op))
		return;
	op->error = node_fd_get(T, op->node, &fd);
	if (op->error)
		return;
	switch (op->opcode) {
	case VN_OP_LOOKUP:
		op_lookup(op, fd);
		break;
	case VN_OP_GETATTR:
		op->error = stat_node(op, fd);
		break;
	case VN_OP_SETATTR:
		op->error = set_attrs(op, fd);
		if (op->error == 0)
			op->error = stat_node(op, fd);
		break;
	case VN_OP_READLINK:
		op_readlink(op, fd);
		break;
	case VN_OP_MKNOD:
	case VN_OP_MKDIR:
	case VN_OP_SYMLINK:
		op_make(op, fd);
		break;
	case VN_OP_UNLINK:
	case VN_OP_RMDIR:
		op_remove(op, fd);
		break;
	case VN_OP_RENAME:
		op_rename(op, fd);
		break;
	case VN_OP_LINK:
		op_link(op, fd);
		break;
	case VN_OP_STATFS:
		op->error = fstatvfs(fd, &op->out.statfs) < 0 ? -errno : 0;
		break;
	case VN_OP_ACCESS:
		op_access(op, fd);
		break;
	default:
		op->error = -ENOSYS;
		break;
	}
	node_fd_put(T, op->node);
}
