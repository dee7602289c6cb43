/*
 * The real tree below the stack, for filters (vn_real_stat, vn_real_open,
 * vn_real_openat): FltCreateFile with an instance, in veneer's terms.
 * Everything starts from a node's O_PATH descriptor on the lower, never
 * from a path under the mount point, so a filter reading a file from
 * inside its own callback neither re-enters the stack nor waits for a
 * worker.  Descriptors are opened as the daemon, not as the caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lower/lower_internal.h"

#define T (lower_ctx.nodes)

/*
 * What a filter may ask for: access mode and a few plain flags.  Creating
 * (O_CREAT, O_TMPFILE) is not offered: a new object would be unknown to
 * the node table and to every filter above.
 */
#define REAL_OPEN_FLAGS \
	(O_ACCMODE | O_DIRECTORY | O_NONBLOCK | O_TRUNC | O_APPEND | O_NOATIME | O_CLOEXEC | \
	 O_NOFOLLOW | O_PATH)

static int real_flags(int flags)
{
	if ((flags & ~REAL_OPEN_FLAGS) || (flags & O_ACCMODE) == O_ACCMODE)
		return -EINVAL;
	return flags | O_CLOEXEC;
}

int vn_real_stat(struct vn_node *parent, const char *name, struct stat *st)
{
	if (parent->owner)
		return -ENOENT;
	int pfd;
	int r = node_fd_get(T, parent, &pfd);
	if (r < 0)
		return r;
	r = fstatat(pfd, name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	node_fd_put(T, parent);
	return r;
}

int vn_real_open(struct vn_node *node, int flags)
{
	int r = real_flags(flags);
	if (r < 0)
		return r;
	if (!node || node->owner)
		return -ENOENT;
	int pfd;
	r = node_fd_get(T, node, &pfd);
	if (r < 0)
		return r;
	/*
	 * Through the /proc/self/fd magic link of the node's own descriptor:
	 * the object itself, whatever its name is now.  O_NOFOLLOW would
	 * refuse the magic link, so a symbolic link is told apart by mode.
	 */
	if ((flags & O_NOFOLLOW) && S_ISLNK(vn_node_mode(node)) && !(flags & O_PATH)) {
		node_fd_put(T, node);
		return -ELOOP;
	}
	char p[PROC_FD_PATH_MAX];
	int fd = node_table_openat(T, AT_FDCWD, proc_fd_path(p, pfd), r & ~O_NOFOLLOW, 0);
	r = fd < 0 ? -errno : fd;
	node_fd_put(T, node);
	return r;
}

int vn_real_openat(struct vn_node *dir, const char *path, int flags)
{
	int r = real_flags(flags);
	if (r < 0)
		return r;
	if (!dir || dir->owner || !path)
		return -ENOENT;
	while (*path == '/')
		path++;		/* relative to DIR, as "/a" names a under the mount's root */
	if (!*path)
		path = ".";
	int dfd;
	int e = node_fd_get(T, dir, &dfd);
	if (e < 0)
		return e;
	/*
	 * Beneath DIR only, no magic links, and no mount crossed: the mount
	 * itself may sit inside the lower (a separate mount point there), and
	 * crossing into it would send this filter's own request back to it.
	 */
	struct open_how how = {
		.flags = (uint64_t)r,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	int fd, tries = 0;
	do	/* EAGAIN: a rename raced the walk; the kernel asks for a retry */
		fd = (int)syscall(SYS_openat2, dfd, path, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN && ++tries < 8);
	r = fd < 0 ? -errno : fd;
	node_fd_put(T, dir);
	return r;
}
