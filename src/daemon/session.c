/* The daemon's life: set up, mount, serve, tear down.  See session.h. */
#include "daemon/session.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/builtin_filters.h"
#include "control/control.h"
#include "core/filter_loader.h"
#include "core/filter_manager.h"
#include "core/inode_map.h"
#include "core/node_table.h"
#include "frontend/dir_snapshot.h"
#include "daemon/daemon_control.h"
#include "frontend/inval.h"
#include "frontend/wire.h"
#include "lower/lower.h"

static void report(int ready_fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Tells the waiting CLI how the mount went (one line), or logs it in -f mode. */
static void report(int ready_fd, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (ready_fd < 0) {
		if (strcmp(line, "ok"))
			log_err("%s", line);
		return;
	}
	dprintf(ready_fd, "%s\n", line);
	close(ready_fd);
}

static size_t descriptor_budget(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	/* half for the node cache; the rest for open files, the session and filters */
	return rl.rlim_cur == RLIM_INFINITY ? 65536 : (size_t)rl.rlim_cur / 2;
}

static void free_node_contexts(struct vn_node *node, void *arg)
{
	(void)arg;
	fm_free_node_contexts(node->filter_ctx);
	node->filter_ctx = NULL;
	dir_snapshot_put(node->listing);
	node->listing = NULL;
}

static int start_builtin(const struct session_config *cfg, int ready_fd)
{
	char err[PATH_MAX + 512];
	int r = builtin_filters_start(cfg, err, sizeof(err));
	if (r < 0)
		report(ready_fd, "%s", err);
	return r;
}

/* attach, detach and status reach the daemon here; a mount works without it. */
static struct control_server *start_control(const char *mountpoint)
{
	struct control_server *srv = NULL;
	int r = control_server_start(mountpoint, geteuid(), &daemon_control_handler, &srv);
	if (r < 0)
		log_warn("no control socket for %s (attach, detach and status will not work): %s",
			 mountpoint, strerror(-r));
	return srv;
}

static int load_filters(struct session_config *cfg, int ready_fd)
{
	for (unsigned int i = 0; i < cfg->nfilters; i++) {
		char err[512];
		if (filter_load(cfg->filters[i], err, sizeof(err)) < 0) {
			report(ready_fd, "%s", err);
			return -1;
		}
	}
	return 0;
}

/*
 * libfuse's own messages go out as ours, one line each.  libfuse writes a
 * line in several calls, so pieces gather per thread until the newline.
 */
static void log_from_fuse(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static __thread char line[1024];
	size_t len = strlen(line);
	vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	char *nl;
	while ((nl = strchr(line, '\n'))) {
		*nl = '\0';
		if (line[0])
			log_msg((int)level, "%s", line);
		memmove(line, nl + 1, strlen(nl + 1) + 1);
	}
	if (strlen(line) == sizeof(line) - 1) {
		log_msg((int)level, "%s", line);
		line[0] = '\0';
	}
}

static struct fuse_session *new_session(struct session_config *cfg)
{
	char *argv[] = { (char *)"veneer", (char *)"-o", cfg->fuse_opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct fuse_session *se =
		fuse_session_new(&args, frontend_ops(), sizeof(struct fuse_lowlevel_ops), NULL);
	fuse_opt_free_args(&args);
	return se;
}

/*
 * Root mounts without libfuse's auto_unmount (fusermount3 would force
 * nosuid,nodev), so a watcher process does its job: it waits for the daemon
 * to go away, and if the mount is left dead (ENOTCONN) it detaches it, so
 * the real directory is never left hidden.  It holds none of the daemon's
 * descriptors (with /dev/fuse open the connection would not die) and uses
 * only async-signal-safe calls (it is forked from a process with threads).
 * Returns the pipe end the daemon keeps open for its whole life, or -1.
 */
static int start_unmount_watcher(const char *mountpoint)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		if (dup2(p[0], 0) < 0)
			_exit(1);
		close_range(1, ~0U, 0);
		char c;
		while (read(0, &c, 1) < 0 && errno == EINTR)
			;
		for (int i = 0; i < 50; i++) {
			/* statfs always asks the daemon; stat may be answered from cache */
			struct statfs sfs;
			if (statfs(mountpoint, &sfs) < 0 && errno == ENOTCONN) {
				umount2(mountpoint, MNT_DETACH);
				_exit(0);
			}
			struct timespec ts = { 0, 20 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		_exit(0);
	}
	close(p[0]);
	return p[1];
}

/* Before the first request: passthrough, killpriv v2 and io_uring need the custom I/O hook. */
static void install_wire(struct fuse_session *se, const struct frontend_config *cfg)
{
	const struct wire_wants want = { .passthrough = cfg->passthrough, .killpriv = cfg->killpriv,
					 .uring = cfg->uring };
	int r = wire_install(se, &want);
	if (r < 0 && cfg->killpriv)
		log_warn("killpriv v2 off: %s; the kernel asks for security.capability before "
			 "writes", strerror(-r));
	if (r < 0 && cfg->uring)
		log_warn("uring off: %s; requests go through the device", strerror(-r));
	if (cfg->passthrough && wire_passthrough_refusal())
		log_warn("passthrough off: %s; reads and writes go through the daemon",
			 wire_passthrough_refusal());
	else if (cfg->passthrough && r < 0)
		log_warn("passthrough off: %s; reads and writes go through the daemon",
			 strerror(-r));
}

static int serve(struct fuse_session *se, unsigned int max_threads)
{
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	if (!lc)
		return -ENOMEM;
	if (max_threads)
		fuse_loop_cfg_set_max_threads(lc, max_threads);
	int r = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	return r;
}

int session_run(struct session_config *cfg, int ready_fd)
{
	int status = 1;
	fuse_set_log_func(log_from_fuse);
	umask(0);	/* modes arrive with the caller's umask applied by the kernel */
	size_t fd_cap = descriptor_budget();
	struct stat st;
	if (fstat(cfg->lower_fd, &st) < 0) {
		report(ready_fd, "cannot stat '%s': %s", cfg->lower, strerror(errno));
		return 1;
	}
	struct inode_map *imap = inode_map_new(st.st_dev);
	struct node_table *nodes = NULL;
	if (!imap || node_table_new(cfg->lower_fd, fd_cap, imap, free_node_contexts, NULL, &nodes) < 0) {
		report(ready_fd, "out of memory");
		goto out_imap;
	}
	node_table_publish(nodes);
	lower_init(nodes, cfg->act_as_caller);
	fm_init(lower_execute);
	frontend_init(nodes, &cfg->cache);
	if (start_builtin(cfg, ready_fd) < 0 || load_filters(cfg, ready_fd) < 0)
		goto out_filters;

	struct fuse_session *se = new_session(cfg);
	if (!se) {
		report(ready_fd, "bad mount options (see the message above)");
		goto out_filters;
	}
	if (fuse_set_signal_handlers(se) < 0) {
		report(ready_fd, "cannot install signal handlers");
		goto out_session;
	}
	/*
	 * The socket first: whoever sees the mount appear (a foreground mount
	 * has no other sign of readiness) can use attach, detach and status.
	 * Requests before the mount exists work too; their invalidations have
	 * nothing to invalidate and are dropped.
	 */
	struct control_server *control = start_control(cfg->mountpoint);
	if (fuse_session_mount(se, cfg->mountpoint) < 0) {
		report(ready_fd, "cannot mount on '%s' (see the message above)", cfg->mountpoint);
		if (control)
			control_server_stop(control);
		goto out_signals;
	}
	if (cfg->cache.passthrough || cfg->cache.killpriv || cfg->cache.uring)
		install_wire(se, &cfg->cache);
	int watcher = cfg->watch_unmount ? start_unmount_watcher(cfg->mountpoint) : -1;
	if (inval_start(se) < 0)
		log_warn("no invalidation thread: attach and detach may show stale entries");
	report(ready_fd, "ok");
	if (cfg->background) {
		log_use_syslog(true);
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null >= 0)
			dup2(null, STDERR_FILENO);
	}
	status = serve(se, cfg->max_threads) < 0 ? 1 : 0;
	if (control)
		control_server_stop(control);
	inval_stop();
	fuse_session_unmount(se);
	frontend_release_all();
	wire_shutdown();
	if (watcher >= 0)
		close(watcher);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_filters:
	/* nodes first: their filter contexts go back to filters still attached */
	node_table_free(nodes);
	cfg->lower_fd = -1;	/* the table owned it */
	/* the trace file is a listener of the trace filter: it goes before the filter */
	builtin_filters_stop();
	fm_shutdown();
out_imap:
	inode_map_free(imap);
	return status;
}
