/* Test filter built for another API version: the daemon must refuse it. */
#include <veneer/filter.h>

static const struct vn_filter_handler handlers[] = { { VN_OP_NONE, NULL, NULL } };

const struct vn_filter_ops vn_filter_entry = {
	.api_version = VN_FILTER_API_VERSION + 98,
	.name = "test-bad-version",
	.altitude = 1,
	.handlers = handlers,
};
