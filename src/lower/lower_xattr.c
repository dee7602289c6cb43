/*
 * Extended attributes on the real tree.  O_PATH descriptors take no xattr
 * calls, so they go through /proc/self/fd/N.  That path would follow a
 * symlink, so symlinks get no xattrs here: get says ENODATA, list is empty
 * and set is EPERM (what user.* gives on a symlink natively anyway).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "lower/lower_internal.h"

#define T (lower_ctx.nodes)

#define XATTR_PATH_MAX (PROC_FD_PATH_MAX + 256)

struct xattr_target {
	char path[XATTR_PATH_MAX];
	bool is_link;
	struct vn_node *held;	/* node whose descriptor path uses */
};

static int target_open(struct vn_node *node, struct xattr_target *t)
{
	t->is_link = S_ISLNK(vn_node_mode(node));
	int fd;
	t->held = node;
	if (!t->is_link) {
		int r = node_fd_get(T, node, &fd);
		if (r == 0)
			proc_fd_path(t->path, fd);
		return r;
	}
	return -EPERM;
}

static void target_close(struct xattr_target *t)
{
	node_fd_put(T, t->held);
}

static void op_get(struct vn_op *op, const char *path, bool list)
{
	size_t size = op->in.getxattr.size;
	char *buf = NULL;
	if (size) {
		buf = malloc(size);
		if (!buf) {
			op->error = -ENOMEM;
			return;
		}
	}
	ssize_t n = list ? listxattr(path, buf, size) : getxattr(path, op->name, buf, size);
	if (n < 0) {
		op->error = -errno;
		free(buf);
		return;
	}
	op->out.xattr = buf;
	op->out.xattr_size = (size_t)n;
}

void lower_xattr_op(struct vn_op *op)
{
	struct xattr_target t;
	op->error = target_open(op->node, &t);
	if (op->error) {
		/* symlinks: user.* xattrs are not permitted on them anyway */
		if (op->opcode == VN_OP_LISTXATTR && t.is_link) {
			op->error = 0;
			op->out.xattr_size = 0;
		} else if (op->opcode == VN_OP_GETXATTR && t.is_link) {
			op->error = -ENODATA;
		}
		return;
	}
	switch (op->opcode) {
	case VN_OP_SETXATTR:
		if (setxattr(t.path, op->name, op->in.setxattr.value, op->in.setxattr.size,
			     op->in.setxattr.flags) < 0)
			op->error = -errno;
		break;
	case VN_OP_GETXATTR:
		op_get(op, t.path, false);
		break;
	case VN_OP_LISTXATTR:
		op_get(op, t.path, true);
		break;
	case VN_OP_REMOVEXATTR:
		if (removexattr(t.path, op->name) < 0)
			op->error = -errno;
		break;
	default:
		op->error = -ENOSYS;
		break;
	}
	target_close(&t);
}
