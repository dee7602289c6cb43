/*
 * Test filter built as a version 3 object (before the size field and
 * cancel): the daemon still loads it and reads its teardown, which refuses
 * an unload that is not forced.  It refuses mkdir of "v3-refused" with
 * EPERM, so a test sees it served.
 */
#include <errno.h>
#include <string.h>

#include <veneer/filter.h>

static enum vn_verdict mkdir_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if (strcmp(op->name, "v3-refused"))
		return VN_PASS;
	op->error = -EPERM;
	return VN_COMPLETE;
}

static int teardown(struct vn_filter *f, bool force)
{
	return -EBUSY;
}

static const struct vn_filter_handler handlers[] = {
	{ VN_OP_MKDIR, mkdir_pre, NULL },
	{ VN_OP_NONE, NULL, NULL },
};

/* What a version 3 header had: no size (padding, zero) and teardown last. */
const struct vn_filter_ops vn_filter_entry = {
	.api_version = 3,
	.name = "test-v3",
	.altitude = 300,
	.handlers = handlers,
	.teardown = teardown,
};
