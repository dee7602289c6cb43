/*
 * Test filter: rewrites results on the way up.  Reads of files whose name
 * ends in ".upper" come back upper-cased; getattr/lookup of them report
 * mode 0400 whatever the real mode is.
 */
#include <ctype.h>
#include <string.h>

#include <veneer/filter.h>

static int is_upper_file(struct vn_node *node)
{
	char path[4096];
	int n = vn_node_path(node, path, sizeof(path));
	return n > 6 && !strcmp(path + n - 6, ".upper");
}

static enum vn_verdict read_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	return is_upper_file(op->node) ? VN_PASS_WITH_POST : VN_PASS;
}

static void read_post(struct vn_filter *f, struct vn_op *op, void *post)
{
	if (op->error || vn_read_data_load(&op->out.data) < 0)
		return;
	for (size_t i = 0; i < op->out.data.size; i++)
		op->out.data.buf[i] = (char)toupper((unsigned char)op->out.data.buf[i]);
}

static void attr_post(struct vn_filter *f, struct vn_op *op, void *post)
{
	struct vn_node *n = op->opcode == VN_OP_LOOKUP ? op->out.entry : op->node;
	if (op->error || !n || !S_ISREG(op->out.attr.st_mode) || !is_upper_file(n))
		return;
	op->out.attr.st_mode = S_IFREG | 0400;
}

static const struct vn_filter_handler handlers[] = {
	{ VN_OP_READ, read_pre, read_post },
	{ VN_OP_LOOKUP, NULL, attr_post },
	{ VN_OP_GETATTR, NULL, attr_post },
	{ VN_OP_NONE, NULL, NULL },
};

const struct vn_filter_ops vn_filter_entry = {
	.api_version = VN_FILTER_API_VERSION,
	.size = sizeof(struct vn_filter_ops),
	.name = "test-rewrite",
	.altitude = 200,
	.handlers = handlers,
};
