/* The lower's entry point and shared helpers; the operations live in lower_*.c. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "lower/lower_internal.h"

struct lower lower_ctx;

int lower_init(struct node_table *nodes, bool act_as_caller)
{
	lower_ctx.nodes = nodes;
	lower_ctx.imap = node_table_inode_map(nodes);
	lower_ctx.act_as_caller = act_as_caller;
	return 0;
}

void lower_set_apply_umask(bool on)
{
	lower_ctx.apply_umask = on;
}

void lower_fix_stat(struct stat *st)
{
	st->st_ino = (ino_t)inode_map_get(lower_ctx.imap, st->st_dev, st->st_ino);
}

int lower_entry_from_name(struct vn_op *op, struct vn_node *parent, int pfd, const char *name,
			  bool keep_fd)
{
	struct stat st;
	int fd = -1;
	if (keep_fd) {
		fd = node_table_openat(lower_ctx.nodes, pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (fstat(fd, &st) < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
	} else if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		return -errno;
	}
	struct vn_node *node;
	int r = node_table_lookup(lower_ctx.nodes, parent, name, &st, fd, &node);
	if (r < 0)
		return r;
	lower_fix_stat(&st);
	op->out.attr = st;
	op->out.entry = node;
	return 0;
}

static bool is_virtual(const struct vn_node *n)
{
	return n && n->owner;
}

/*
 * A virtual node reached the bottom of the stack: its filter left the
 * operation to pass.  Closing it is harmless; anything else is refused
 * rather than run on whatever real object shares the identity.
 */
static bool refuse_virtual(struct vn_op *op)
{
	if (!is_virtual(op->node) && !is_virtual(op->newparent) &&
	    !(op->opcode == VN_OP_COPY_FILE_RANGE && is_virtual(op->in.copy.node_out)))
		return false;
	if (op->opcode == VN_OP_FLUSH) {
		op->error = -ENOSYS;
	} else if (vn_opcode_facts(op->opcode) & VN_OPF_CLOSES) {
		op->error = 0;
	} else {
		log_err("BUG: %s on a virtual node reached the lower", vn_opcode_name(op->opcode));
		op->error = -EIO;
	}
	return true;
}

void lower_execute(struct vn_op *op)
{
	if (refuse_virtual(op))
		return;
	unsigned int facts = vn_opcode_facts(op->opcode);
	if (op->opcode <= VN_OP_NONE || op->opcode >= VN_OP_COUNT)
		op->error = -ENOSYS;
	else if (facts & VN_OPF_XATTR)
		lower_xattr_op(op);
	else if (facts & VN_OPF_DIR_HANDLE)
		lower_dir_op(op);
	else if (facts & VN_OPF_FILE)
		lower_file_op(op);
	else
		lower_entry_op(op);
}
