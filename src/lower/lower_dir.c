/*
 * Directories on the real tree: open, list (the whole directory), sync;
 * without an open file (skipped directory opens) on a descriptor per call.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lower/lower_internal.h"

#define T (lower_ctx.nodes)

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int read_listing(int fd, dev_t dev, struct vn_dirlist *list)
{
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	char *buf = malloc(65536);
	if (!buf)
		return -ENOMEM;
	int r = 0;
	for (;;) {
		long n = syscall(SYS_getdents64, fd, buf, 65536);
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		for (long pos = 0; pos < n;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + pos);
			pos += d->d_reclen;
			ino_t ino = (ino_t)inode_map_get(lower_ctx.imap, dev, d->d_ino);
			r = vn_dirlist_add(list, d->d_name, ino, DTTOIF(d->d_type));
			if (r < 0)
				goto out;
		}
	}
out:
	free(buf);
	return r;
}

/* A new descriptor to list or sync the node's directory; -errno on failure. */
static int open_dir(struct vn_node *node)
{
	int pfd, r = node_fd_get(T, node, &pfd);
	if (r)
		return r;
	int fd = node_table_openat(T, pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	r = fd < 0 ? -errno : fd;
	node_fd_put(T, node);
	return r;
}

/*
 * The open directory's descriptor, or, when the kernel skips directory
 * opens (no file), one for this call only; *ret_tmp: the caller closes it.
 */
static int dir_fd(struct vn_op *op, bool *ret_tmp)
{
	*ret_tmp = false;
	if (op->file && op->file->fd >= 0)
		return op->file->fd;
	int fd = open_dir(op->node);
	*ret_tmp = fd >= 0;
	return fd;
}

void lower_dir_op(struct vn_op *op)
{
	bool tmp;
	int fd;
	switch (op->opcode) {
	case VN_OP_OPENDIR:
		fd = open_dir(op->node);
		if (fd < 0)
			op->error = fd;
		else
			op->file->fd = fd;
		break;
	case VN_OP_READDIR:
	case VN_OP_FSYNCDIR:
		fd = dir_fd(op, &tmp);
		if (fd < 0)
			op->error = fd;
		else if (op->opcode == VN_OP_READDIR)
			op->error = read_listing(fd, op->node->dev, op->out.dir);
		else if ((op->in.fsync.datasync ? fdatasync(fd) : fsync(fd)) < 0)
			op->error = -errno;
		if (tmp)
			close(fd);
		break;
	case VN_OP_RELEASEDIR:
		break;	/* the descriptor closes with the file's last reference */
	default:
		op->error = -ENOSYS;
		break;
	}
}
