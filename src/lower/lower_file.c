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
 * O_DIRECT still bypasses the kernel's FUSE page cache).
 */
static int reopen_flags(int flags)
{
	return (flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT | O_NOFOLLOW | O_APPEND)) |
	       O_CLOEXEC;
}

static void op_open(struct vn_op *op)
{
	int fd;
	op->error = node_fd_get(T, op->node, &fd);
	if (op->error)
		return;
	char p[PROC_FD_PATH_MAX];
	/* truncating as the caller clears setuid/setgid bits as it would natively */
	bool as_caller = op->in.open.flags & O_TRUNC;
	if (as_caller)
		creds_enter(&op->caller);
	int ffd = open(proc_fd_path(p, fd), reopen_flags(op->in.open.flags));
	int saved = errno;
	if (as_caller)
		creds_leave();
	errno = saved;
	node_fd_put(T, op->node);
	if (ffd < 0) {
		op->error = -errno;
		return;
	}
	op->file->fd = ffd;
}

static void op_create(struct vn_op *op)
{
	int pfd;
	op->error = node_fd_get(T, op->node, &pfd);
	if (op->error)
		return;
	creds_enter(&op->caller);
	/* the kernel followed any symlink already: never follow one here */
	int ffd = openat(pfd, op->name, reopen_flags(op->in.open.flags) | O_CREAT | O_NOFOLLOW,
			 op->in.open.mode);
	int r = ffd < 0 ? -errno : 0;
	creds_leave();
	if (r == 0)
		r = lower_entry_from_name(op, op->node, pfd, op->name);
	node_fd_put(T, op->node);
	if (r < 0) {
		if (ffd >= 0)
			close(ffd);
		op->error = r;
		return;
	}
	op->file->fd = ffd;
}

static void op_copy(struct vn_op *op)
{
	loff_t in = op->in.copy.off_in, out = op->in.copy.off_out;
	ssize_t n = copy_file_range(op->file->fd, &in, op->in.copy.file_out->fd, &out,
				    op->in.copy.len, (unsigned int)op->in.copy.flags);
	if (n < 0)
		op->error = -errno;
	else
		op->out.count = (size_t)n;
}

void lower_file_op(struct vn_op *op)
{
	int fd = op->file ? op->file->fd : -1;
	ssize_t n;
	off_t o;
	switch (op->opcode) {
	case VN_OP_OPEN:
		op_open(op);
		break;
	case VN_OP_CREATE:
		op_create(op);
		break;
	case VN_OP_READ:
		op->out.data = (struct vn_read_data){ NULL, op->in.read.size, fd, op->in.read.offset };
		break;
	case VN_OP_WRITE:
		n = pwrite(fd, op->in.write.buf, op->in.write.size, op->in.write.offset);
		if (n < 0)
			op->error = -errno;
		else
			op->out.count = (size_t)n;
		break;
	case VN_OP_FLUSH:
		/* close(2) on a local file has nothing to report: the kernel stops asking */
		op->error = -ENOSYS;
		break;
	case VN_OP_RELEASE:
		if (fd >= 0)
			close(fd);
		op->file->fd = -1;
		break;
	case VN_OP_FSYNC:
		if ((op->in.fsync.datasync ? fdatasync(fd) : fsync(fd)) < 0)
			op->error = -errno;
		break;
	case VN_OP_FALLOCATE:
		if (fallocate(fd, op->in.fallocate.mode, op->in.fallocate.offset,
			      op->in.fallocate.length) < 0)
			op->error = -errno;
		break;
	case VN_OP_COPY_FILE_RANGE:
		op_copy(op);
		break;
	case VN_OP_LSEEK:
		o = lseek(fd, op->in.lseek.offset, op->in.lseek.whence);
		if (o < 0)
			op->error = -errno;
		else
			op->out.offset = o;
		break;
	default:
		op->error = -ENOSYS;
		break;
	}
}
