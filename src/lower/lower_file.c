/* Open files on the real tree: open, create, read, write, sync, allocate, seek. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "lower/lower_internal.h"

#define T (lower_ctx.nodes)

/*
 * Flags for reopening: O_CREAT/O_EXCL were handled by the kernel or by
 * create, O_NOFOLLOW by the kernel's path walk (here it would refuse the
 * /proc/self/fd magic link itself).  O_APPEND is dropped because the kernel
 * already turned appends into writes at the end of the file, and any open
 * file may carry the write-back of a shared mapping, which must land at
 * its own offset (pwrite on an O_APPEND descriptor appends).  O_DIRECT is
 * dropped because the daemon's buffers are not aligned (the application's
 * O_DIRECT still bypasses the kernel's FUSE page cache).  The kernel's
 * exec flag (VN_OPEN_EXEC) means nothing to openat.
 */
static int reopen_flags(int flags)
{
	return (flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT | O_NOFOLLOW | O_APPEND |
			  VN_OPEN_EXEC)) |
	       O_CLOEXEC;
}

/* A new descriptor of NODE's object: fd or -errno.  Never through the mount. */
static int open_from_node(struct vn_node *node, int flags)
{
	int pfd;
	int r = node_fd_get(T, node, &pfd);
	if (r < 0)
		return r;
	char p[PROC_FD_PATH_MAX];
	int fd = node_table_openat(T, AT_FDCWD, proc_fd_path(p, pfd), flags | O_CLOEXEC, 0);
	r = fd < 0 ? -errno : fd;
	node_fd_put(T, node);
	return r;
}

/*
 * After an O_TRUNC open: a caller with uid 0 truncated as the daemon, so
 * the bits the truncation would have cleared for it without CAP_FSETID are
 * cleared here: told by the kernel (killpriv v2), or read from the caller.
 */
static int kill_after_trunc(struct vn_op *op, int fd)
{
	return creds_kill_suidgid(fd, op->in.open.kill_suidgid ? NULL : &op->caller);
}

static void op_open(struct vn_op *op)
{
	/* truncating as the caller clears setuid/setgid bits as it would natively */
	bool as_caller = op->in.open.flags & O_TRUNC;
	if (as_caller)
		creds_enter(&op->caller);
	int fd = open_from_node(op->node, reopen_flags(op->in.open.flags));
	if (as_caller)
		creds_leave();
	int r = fd >= 0 && as_caller ? kill_after_trunc(op, fd) : 0;
	if (fd < 0 || r < 0) {
		if (fd >= 0)
			close(fd);
		op->error = fd < 0 ? fd : r;
	} else {
		op->file->fd = fd;
	}
}

static void op_create(struct vn_op *op)
{
	int pfd;
	op->error = node_fd_get(T, op->node, &pfd);
	if (op->error)
		return;
	creds_enter(&op->caller);
	/* the kernel followed any symlink already: never follow one here */
	int ffd = node_table_openat(T, pfd, op->name,
				    reopen_flags(op->in.open.flags) | O_CREAT | O_NOFOLLOW,
				    op->in.open.mode);
	int r = ffd < 0 ? -errno : 0;
	creds_leave();
	if (r == 0 && (op->in.open.flags & O_TRUNC))	/* it may have existed */
		r = kill_after_trunc(op, ffd);
	if (r == 0)
		r = lower_entry_from_name(op, op->node, pfd, op->name, true);
	node_fd_put(T, op->node);
	if (r < 0) {
		if (ffd >= 0)
			close(ffd);
		op->error = r;
		return;
	}
	op->file->fd = ffd;
}

/*
 * A descriptor for one data operation: the open file's, or, when the
 * kernel skips opens (no file handle), one opened from the node for this
 * call only.  Opening per call keeps no writable descriptor around (which
 * would make execve of the file fail with ETXTBSY) and needs no release.
 * Returns the descriptor or -errno; *ret_tmp is set when the caller closes it.
 */
static int data_fd(struct vn_file *file, struct vn_node *node, int flags, bool *ret_tmp)
{
	*ret_tmp = false;
	if (file && file->fd >= 0)
		return file->fd;
	int fd = open_from_node(node, flags);
	*ret_tmp = fd >= 0;
	return fd;
}

static void put_fd(int fd, bool tmp)
{
	if (tmp)
		close(fd);
}

/* Without an open file the bytes are copied out: the descriptor closes before the reply. */
static void op_read(struct vn_op *op)
{
	bool tmp;
	int fd = data_fd(op->file, op->node, O_RDONLY, &tmp);
	if (fd < 0) {
		op->error = fd;
		return;
	}
	op->out.data = (struct vn_read_data){ NULL, op->in.read.size, fd, op->in.read.offset };
	if (tmp) {
		op->error = vn_read_data_load(&op->out.data);
		put_fd(fd, tmp);
	}
}

static void op_write(struct vn_op *op)
{
	bool tmp;
	int fd = data_fd(op->file, op->node, O_WRONLY, &tmp);
	if (fd < 0) {
		op->error = fd;
		return;
	}
	/* before the data, as the kernel's own write does (file_remove_privs) */
	int r = op->in.write.kill_suidgid ? creds_kill_suidgid(fd, NULL) : 0;
	ssize_t n = r < 0 ? 0 : pwrite(fd, op->in.write.buf, op->in.write.size, op->in.write.offset);
	if (r < 0)
		op->error = r;
	else if (n < 0)
		op->error = -errno;
	else
		op->out.count = (size_t)n;
	put_fd(fd, tmp);
}

static void op_copy(struct vn_op *op)
{
	bool tmp_in, tmp_out;
	int in_fd = data_fd(op->file, op->node, O_RDONLY, &tmp_in);
	if (in_fd < 0) {
		op->error = in_fd;
		return;
	}
	int out_fd = data_fd(op->in.copy.file_out, op->in.copy.node_out, O_WRONLY, &tmp_out);
	if (out_fd < 0) {
		op->error = out_fd;
		put_fd(in_fd, tmp_in);
		return;
	}
	loff_t in = op->in.copy.off_in, out = op->in.copy.off_out;
	int r = op->in.copy.kill_suidgid ? creds_kill_suidgid(out_fd, &op->caller) : 0;
	ssize_t n = r < 0 ? 0 : copy_file_range(in_fd, &in, out_fd, &out, op->in.copy.len,
				    (unsigned int)op->in.copy.flags);
	if (r < 0)
		op->error = r;
	else if (n < 0)
		op->error = -errno;
	else
		op->out.count = (size_t)n;
	put_fd(out_fd, tmp_out);
	put_fd(in_fd, tmp_in);
}

/* fsync, fallocate, lseek: one call on the data descriptor. */
static void op_simple(struct vn_op *op)
{
	bool tmp;
	int flags = op->opcode == VN_OP_FALLOCATE ? O_WRONLY : O_RDONLY;
	int fd = data_fd(op->file, op->node, flags, &tmp);
	if (fd < 0) {
		op->error = fd;
		return;
	}
	int r = 0;
	off_t o;
	switch (op->opcode) {
	case VN_OP_FSYNC:
		r = op->in.fsync.datasync ? fdatasync(fd) : fsync(fd);
		break;
	case VN_OP_FALLOCATE:
		r = op->in.fallocate.kill_suidgid ? creds_kill_suidgid(fd, &op->caller) : 0;
		if (r < 0) {
			errno = -r;
			break;
		}
		r = fallocate(fd, op->in.fallocate.mode, op->in.fallocate.offset,
			      op->in.fallocate.length);
		break;
	default:
		o = lseek(fd, op->in.lseek.offset, op->in.lseek.whence);
		if (o < 0)
			r = -1;
		else
			op->out.offset = o;
		break;
	}
	if (r < 0)
		op->error = -errno;
	put_fd(fd, tmp);
}

void lower_file_op(struct vn_op *op)
{
	switch (op->opcode) {
	case VN_OP_OPEN:
		op_open(op);
		break;
	case VN_OP_CREATE:
		op_create(op);
		break;
	case VN_OP_READ:
		op_read(op);
		break;
	case VN_OP_WRITE:
		op_write(op);
		break;
	case VN_OP_FLUSH:
		/* close(2) on a local file has nothing to report: the kernel stops asking */
		op->error = -ENOSYS;
		break;
	case VN_OP_RELEASE:
		break;	/* the descriptor closes with the file's last reference */
	case VN_OP_FSYNC:
	case VN_OP_FALLOCATE:
	case VN_OP_LSEEK:
		op_simple(op);
		break;
	case VN_OP_COPY_FILE_RANGE:
		op_copy(op);
		break;
	default:
		op->error = -ENOSYS;
		break;
	}
}
