/* What veneer asks of the kernel when the connection starts. */
#include "frontend/fuse_request.h"
#include "frontend/wire.h"
#include "lower/lower.h"

/*
 * Skipping opens saves two round trips per open(2); it needs the kernel to
 * check permissions (default_permissions) and no filter that wants to see
 * opens, releases, flushes or directory opens.  O_TRUNC then arrives as a
 * setattr.
 */
static void want_skipped_opens(struct fuse_conn_info *conn)
{
	if (!frontend.cfg.skip_opens || fm_wants_opens() ||
	    !(conn->capable & FUSE_CAP_NO_OPEN_SUPPORT)) {
		__atomic_store_n(&frontend.cfg.skip_opens, false, __ATOMIC_RELEASE);
		frontend.cfg.skip_opendirs = false;
		return;
	}
	conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	/*
	 * Directories too, where listings are cached anyway: the kernel then
	 * caches them as if every OPENDIR had asked for it (FOPEN_CACHE_DIR,
	 * FOPEN_KEEP_CACHE), and READDIR comes without a handle.
	 */
	frontend.cfg.skip_opendirs = frontend.cfg.cache_readdir &&
				     (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT);
	if (frontend.cfg.skip_opendirs)
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
}

bool frontend_skips_opens(void)
{
	return __atomic_load_n(&frontend.cfg.skip_opens, __ATOMIC_ACQUIRE);
}

void frontend_conn_init(struct fuse_conn_info *conn)
{
	/* O_TRUNC arrives with the open, not as a separate setattr */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* a spliced reply bypasses the hook, which commits io_uring requests' replies */
	if ((conn->capable & FUSE_CAP_SPLICE_WRITE) && !wire_uring_planned())
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if ((conn->capable & FUSE_CAP_CACHE_SYMLINKS) && frontend.cfg.keep_cache)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/* locks stay in the kernel: forwarded, every lock would belong to the daemon */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	/* with long caching, data changes only through the mount: no need to compare mtimes */
	if (frontend.cfg.keep_cache)
		conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	want_skipped_opens(conn);
	/*
	 * The kernel checks permissions (default_permissions): it must see ACLs
	 * to check them as the real filesystem does, and then the umask is
	 * applied below, by the real filesystem, which knows default ACLs.
	 */
	if (frontend.cfg.posix_acl && (conn->capable & FUSE_CAP_POSIX_ACL) &&
	    (conn->capable & FUSE_CAP_DONT_MASK)) {
		conn->want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
		lower_set_apply_umask(true);
	}
}
