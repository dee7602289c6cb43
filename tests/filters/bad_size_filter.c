/* Test filter of the current version that does not give its struct's size: refused. */
#include <veneer/filter.h>

static const struct vn_filter_handler handlers[] = { { VN_OP_NONE, NULL, NULL } };

const struct vn_filter_ops vn_filter_entry = {
	.api_version = VN_FILTER_API_VERSION,
	.name = "test-bad-size",
	.altitude = 1,
	.handlers = handlers,
};
