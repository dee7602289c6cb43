/*
 * Test filter that calls a function of the daemon outside the filter API
 * (the filter manager's fm_find): the daemon does not export it, so the
 * object does not load.
 */
#include <veneer/filter.h>

struct vn_filter *fm_find(const char *name);

static int attach(struct vn_filter *f, const char *args)
{
	return fm_find("trace") ? 0 : -1;
}

static const struct vn_filter_handler handlers[] = { { VN_OP_NONE, NULL, NULL } };

const struct vn_filter_ops vn_filter_entry = {
	.api_version = VN_FILTER_API_VERSION,
	.size = sizeof(struct vn_filter_ops),
	.name = "test-internal",
	.altitude = 1,
	.attach = attach,
	.handlers = handlers,
};
