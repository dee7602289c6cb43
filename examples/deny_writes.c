/*
 * An example veneer filter, built outside the tree against the installed
 * header:
 *
 *   cc -shared -fPIC -o deny_writes.so deny_writes.c $(pkg-config --cflags veneer-filter)
 *   veneer mount --filter ./deny_writes.so:/protected LOWER MOUNTPOINT
 *
 * Every operation that would change something at or under the path given
 * as ARGS (as seen in the mount) fails with EACCES; everything else passes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <veneer/filter.h>

struct deny {
	char *prefix;
	size_t len;
};

static int under_prefix(struct vn_filter *f, struct vn_node *node, const char *name)
{
	const struct deny *d = vn_filter_private(f);
	char path[PATH_MAX];
	int n = vn_node_path(node, path, sizeof(path));
	if (n < 0)
		return 0;
	if (name && (size_t)n + strlen(name) + 2 <= sizeof(path)) {
		if (strcmp(path, "/"))
			strcat(path, "/");
		strcat(path, name);
	}
	return !strncmp(path, d->prefix, d->len) && (path[d->len] == '\0' || path[d->len] == '/');
}

static enum vn_verdict deny_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	int hit = under_prefix(f, op->node, op->name);
	if (!hit && op->newparent)
		hit = under_prefix(f, op->newparent, op->newname);
	if (!hit)
		return VN_PASS;
	op->error = -EACCES;
	return VN_COMPLETE;
}

/* Opening for writing is a change too. */
static enum vn_verdict open_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	if ((op->in.open.flags & O_ACCMODE) == O_RDONLY && !(op->in.open.flags & O_TRUNC))
		return VN_PASS;
	return deny_pre(f, op, post);
}

static int attach(struct vn_filter *f, const char *args)
{
	if (!args || args[0] != '/') {
		vn_log(LOG_ERR, "deny_writes: ARGS must be an absolute path in the mount");
		return -EINVAL;
	}
	struct deny *d = calloc(1, sizeof(*d));
	if (!d || !(d->prefix = strdup(args))) {
		free(d);
		return -ENOMEM;
	}
	d->len = strlen(d->prefix);
	while (d->len > 1 && d->prefix[d->len - 1] == '/')
		d->prefix[--d->len] = '\0';
	vn_filter_set_private(f, d);
	return 0;
}

static void detach(struct vn_filter *f)
{
	struct deny *d = vn_filter_private(f);
	free(d->prefix);
	free(d);
}

static const struct vn_filter_handler handlers[] = {
	{ VN_OP_OPEN, open_pre, NULL },
	{ VN_OP_CREATE, deny_pre, NULL },
	{ VN_OP_MKNOD, deny_pre, NULL },
	{ VN_OP_MKDIR, deny_pre, NULL },
	{ VN_OP_SYMLINK, deny_pre, NULL },
	{ VN_OP_LINK, deny_pre, NULL },
	{ VN_OP_UNLINK, deny_pre, NULL },
	{ VN_OP_RMDIR, deny_pre, NULL },
	{ VN_OP_RENAME, deny_pre, NULL },
	{ VN_OP_SETATTR, deny_pre, NULL },
	{ VN_OP_SETXATTR, deny_pre, NULL },
	{ VN_OP_REMOVEXATTR, deny_pre, NULL },
	{ VN_OP_NONE, NULL, NULL },
};

const struct vn_filter_ops vn_filter_entry = {
	.api_version = VN_FILTER_API_VERSION,
	.size = sizeof(struct vn_filter_ops),
	.name = "deny_writes",
	.altitude = 500,
	.attach = attach,
	.detach = detach,
	.handlers = handlers,
};
