/* Directories on the real tree: open, list (whole-directory snapshots), sync. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

void lower_dir_op(struct vn_op *op)
{
	int fd;
	switch (op->opcode) {
	case VN_OP_OPENDIR:
		op->error = node_fd_get(T, op->node, &fd);
		if (op->error)
			return;
		op->file->fd = node_table_openat(T, fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
		if (op->file->fd < 0)
			op->error = -errno;
		node_fd_put(T, op->node);
		break;
	case VN_OP_READDIR:
		op->error = read_listing(op->file->fd, op->node->dev, op->out.dir);
		break;
	case VN_OP_RELEASEDIR:
		break;	/* the descriptor closes with the file's last reference */
	case VN_OP_FSYNCDIR:
		if ((op->in.fsync.datasync ? fdatasync(op->file->fd) : fsync(op->file->fd)) < 0)
			op->error = -errno;
		break;
	default:
		op->error = -ENOSYS;
		break;
	}
}
