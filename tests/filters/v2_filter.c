/*
 * Test filter built as a version 2 object (before ports): the daemon still
 * loads it.  It refuses mkdir of "v2-refused" with EPERM, so a test sees
 * it served.
 */
#include <errno.h>
#include <string.h>

#include <veneer/filter.h>

static enum vn_verdict mkdir_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (strcmp(op->name, "v2-refused"))
		return VN_PASS;
	op->error = -EPERM;
	return VN_COMPLETE;
}

static const struct vn_filter_handler handlers[] = {
	{ VN_OP_MKDIR, mkdir_pre, NULL },
	{ VN_OP_NONE, NULL, NULL },
};

const struct vn_filter_ops vn_filter_entry = {
	.api_version = 2,
	.name = "test-v2",
	.altitude = 200,
	.handlers = handlers,
};
