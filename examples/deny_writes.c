/*
 * An example veneer filter, built outside the tree against the installed
 * header:
 *
 *   cc -shared -fPIC -o deny_writes.so deny_writes.c $(pkg-config --cflags veneer-filter)
 *   veneer mount --filter ./deny_writes.so:/protected LOWER MOUNTPOINT
 *
 * Every operation that would change something at or under the path given
 * as ARGS (as seen in the mount) fails with EACCES; everything else passes.
 * It fails closed: an object whose place it cannot tell counts as
 * protected (see under_prefix).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <veneer/filter.h>

struct deny {
	char *prefix;
	size_t len;
};

/*
 * Whether DIR (a path) followed by NAME (NULL: nothing) is D's prefix or
 * lies under it, compared piece by piece: DIR/NAME may not fit a buffer.
 */
static bool joined_under(const struct deny *d, const char *dir, const char *name)
{
	size_t dlen = strlen(dir);
	if (strncmp(dir, d->prefix, dlen < d->len ? dlen : d->len))
		return false;
	if (dlen >= d->len)
		return dir[d->len] == '\0' || dir[d->len] == '/' || d->len == 1;
	/* DIR is shorter than the prefix: the rest must come from "/" NAME */
	if (!name)
		return false;
	const char *rest = d->prefix + dlen;
	if (strcmp(dir, "/")) {
		if (*rest != '/')
			return false;
		rest++;
	}
	size_t rlen = strlen(rest), nlen = strlen(name);
	return rlen <= nlen && !strncmp(name, rest, rlen) && (name[rlen] == '\0' || name[rlen] == '/');
}

/*
 * Whether the object NAME in directory NODE (NODE itself when NAME is NULL)
 * is at or under the protected path.  A policy filter must fail closed: when
 * it cannot tell, the object counts as protected.  A node without a name
 * (unlinked) is no longer in the tree at all.  A path past PATH_MAX cannot
 * be built, so the answer comes from the deepest ancestor whose path can:
 * under the prefix, protected; beside it, not; above it, cannot tell.
 */
static bool under_prefix(struct vn_filter *f, struct vn_node *node, const char *name)
{
	const struct deny *d = vn_filter_private(f);
	char path[PATH_MAX], part[NAME_MAX + 1];
	int n = vn_node_path(node, path, sizeof(path));
	if (n >= 0)
		return joined_under(d, path, name);
	if (n == -ENOENT)
		return false;
	struct vn_node *at = node;
	bool held = false;
	for (;;) {
		struct vn_node *up = vn_node_parent(at, part, sizeof(part));
		if (held)
			vn_node_unref(at);
		if (!up)
			return true;		/* cannot tell */
		at = up;
		held = true;
		n = vn_node_path(at, path, sizeof(path));
		if (n != -ENAMETOOLONG)
			break;
	}
	vn_node_unref(at);
	if (n < 0)
		return true;			/* cannot tell */
	/* the object lies more than PATH_MAX below PATH: beside the prefix, or not */
	return joined_under(d, path, NULL) || !strncmp(path, d->prefix, strlen(path));
}

static enum vn_verdict deny_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	bool hit = under_prefix(f, op->node, op->name);
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
