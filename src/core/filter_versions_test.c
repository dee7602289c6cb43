/*
 * Unit test: which struct vn_filter_ops the daemon accepts, and that it
 * reads from an older object only the fields its version has.
 */
#include "core/filter_manager.h"

#include <errno.h>
#include <string.h>

#include "../tests/unit.h"

static int teardown(struct vn_filter *f, bool force)
{
	return 0;
}

static void cancel(struct vn_filter *f, struct vn_op *op)
{
}

/* Refuses its arguments, saying why. */
static int picky_attach(struct vn_filter *f, const char *args)
{
	vn_attach_error(f, "bad argument '%s'", args);
	return -EINVAL;
}

static const struct vn_filter_handler no_handlers[] = { { VN_OP_NONE, NULL, NULL } };

/* Every field set, as a newer header would: the version says how much of it counts. */
static struct vn_filter_ops full(unsigned int version, unsigned int size, const char *name)
{
	return (struct vn_filter_ops){ .api_version = version, .size = size, .name = name,
				       .handlers = no_handlers, .teardown = teardown,
				       .cancel = cancel };
}

static bool refused(struct vn_filter_ops ops, const char *want)
{
	char err[512] = "";
	int r = fm_ops_check(&ops, "x.so", err, sizeof(err));
	printf("# %s\n", err);
	return r == -EINVAL && strstr(err, want) != NULL;
}

int main(void)
{
	unsigned int size = sizeof(struct vn_filter_ops);
	CHECK(refused(full(1, 0, "old"), "built for filter API 1, this veneer loads 2 to 5"));
	CHECK(refused(full(1, 0, "old"), "rebuild the filter"));
	CHECK(refused(full(VN_FILTER_API_VERSION + 1, size + 8, "new"), "update veneer"));
	CHECK(refused(full(4, 0, "nosize"), "struct vn_filter_ops of 0 bytes"));
	CHECK(refused(full(4, size + 8, "big"), "reads"));
	CHECK(refused(full(4, size, NULL), "has no name"));

	/* registered, each filter's copy holds what its version has, the rest zero */
	struct vn_filter_ops v2 = full(2, 0, "v2"), v3 = full(3, 0, "v3"), v4 = full(4, size, "v4");
	char err[256];
	CHECK(fm_register(&v2, NULL, NULL, NULL, err, sizeof(err)) == 0);
	CHECK(fm_register(&v3, NULL, NULL, NULL, err, sizeof(err)) == 0);
	CHECK(fm_register(&v4, NULL, NULL, NULL, err, sizeof(err)) == 0);

	/* a refusal's reason reaches the user: after a loaded filter's name, a built-in's alone */
	struct vn_filter_ops picky = full(4, size, "picky");
	picky.attach = picky_attach;
	CHECK(fm_register(&picky, "x=1", NULL, "/lib/picky.so", err, sizeof(err)) == -EINVAL);
	CHECK(!strcmp(err, "filter '/lib/picky.so' refused to attach: bad argument 'x=1'"));
	CHECK(fm_register(&picky, "x=1", NULL, NULL, err, sizeof(err)) == -EINVAL);
	CHECK(!strcmp(err, "bad argument 'x=1'"));
	CHECK(!fm_find("picky"));
	const struct vn_filter_ops *o2 = fm_find("v2")->ops, *o3 = fm_find("v3")->ops,
				   *o4 = fm_find("v4")->ops;
	CHECK(o2 != &v2 && !o2->teardown && !o2->cancel && o2->handlers == no_handlers);
	CHECK(o3->teardown == teardown && !o3->cancel);
	CHECK(o4->teardown == teardown && o4->cancel == cancel);
	fm_shutdown();
	printf("1..%d\n", unit_count);
	return 0;
}
