/*
 * Test filter: completes an operation itself.  getxattr("user.vn.complete")
 * is answered by the filter, and nothing below (the lower) runs for it.
 */
#include <stdlib.h>
#include <string.h>

#include <veneer/filter.h>

static const char value[] = "completed-by-filter";

static enum vn_verdict getxattr_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (strcmp(op->name, "user.vn.complete"))
		return VN_PASS;
	op->out.xattr_size = sizeof(value) - 1;
	if (op->in.getxattr.size) {
		op->out.xattr = malloc(sizeof(value));
		if (!op->out.xattr) {
			op->error = -12;
			return VN_COMPLETE;
		}
		memcpy(op->out.xattr, value, sizeof(value));
	}
	op->error = 0;
	return VN_COMPLETE;
}

static const struct vn_filter_handler handlers[] = {
	{ VN_OP_GETXATTR, getxattr_pre, NULL },
	{ VN_OP_NONE, NULL, NULL },
};

const struct vn_filter_ops vn_filter_entry = {
	.api_version = VN_FILTER_API_VERSION,
	.size = sizeof(struct vn_filter_ops),
	.name = "test-complete",
	.altitude = 300,
	.handlers = handlers,
};
