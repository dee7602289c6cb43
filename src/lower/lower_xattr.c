/*
 * Extended attributes on the real tree.  O_PATH descriptors take no xattr
 * calls, so they go through /proc/self/fd/N.  That path would follow a
 * symlink, so a symlink is reached as /proc/self/fd/PARENT/NAME with the
 * l* calls, which act on the link itself.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "lower/lower_internal.h"

#define T (lower_ctx.nodes)

struct xattr_target {
	char path[PROC_FD_PATH_MAX + NAME_MAX + 2];
	bool is_link;
	struct vn_node *held;	/* node whose descriptor the path uses */
	struct vn_node *parent;	/* reference to drop, for symlinks */
};

static int target_open(struct vn_node *node, struct xattr_target *t)
{
	int fd;
	t->is_link = S_ISLNK(vn_node_mode(node));
	t->parent = NULL;
	if (!t->is_link) {
		t->held = node;
		int r = node_fd_get(T, node, &fd);
		if (r == 0)
			proc_fd_path(t->path, fd);
		return r;
	}
	char name[NAME_MAX + 1];
	int r = node_table_parent_name(T, node, &t->parent, name);
	if (r < 0)
		return r;
	t->held = t->parent;
	r = node_fd_get(T, t->parent, &fd);
	if (r < 0) {
		node_unref(T, t->parent);
		return r;
	}
	snprintf(t->path, sizeof(t->path), "/proc/self/fd/%d/%s", fd, name);
	return 0;
}

static void target_close(struct xattr_target *t)
{
	node_fd_put(T, t->held);
	node_unref(T, t->parent);
}

static void op_get(struct vn_op *op, const char *path, bool link, bool list)
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
	ssize_t n = list ? (link ? llistxattr(path, buf, size) : listxattr(path, buf, size))
			 : (link ? lgetxattr(path, op->name, buf, size)
				 : getxattr(path, op->name, buf, size));
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
	if (op->error)
		return;
	switch (op->opcode) {
	case VN_OP_SETXATTR:
		if ((t.is_link ? lsetxattr : setxattr)(t.path, op->name, op->in.setxattr.value,
						       op->in.setxattr.size, op->in.setxattr.flags) < 0)
			op->error = -errno;
		break;
	case VN_OP_GETXATTR:
		op_get(op, t.path, t.is_link, false);
		break;
	case VN_OP_LISTXATTR:
		op_get(op, t.path, t.is_link, true);
		break;
	case VN_OP_REMOVEXATTR:
		if ((t.is_link ? lremovexattr : removexattr)(t.path, op->name) < 0)
			op->error = -errno;
		break;
	default:
		op->error = -ENOSYS;
		break;
	}
	target_close(&t);
}
