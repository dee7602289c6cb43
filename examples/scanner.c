/*
 * scanner: a filter that asks a policy program whether a process may open
 * or execute a file (Filter Manager's scanner pattern).  Each open is
 * pended and the question "open PATH" or "exec PATH" goes to the client of
 * port "policy" (examples/policy.c is one), followed for a regular file by
 * a NUL and its first bytes (at most SCAN_HEAD), read from the real file
 * below the stack (vn_real_open), so the program judges content without
 * opening the file through the mount; the operation resumes with the
 * answer ("allow" passes, "deny" fails with EACCES) or, with no client, no
 * answer in time or any other answer, with the default.  An application
 * interrupted while its open waits gets EINTR (the question is withdrawn).
 * Port "stats" answers with its counters.
 *
 *   cc -shared -fPIC -o scanner.so scanner.c $(pkg-config --cflags veneer-filter)
 *   veneer mount --opens=send --filter ./scanner.so:deny,1000 LOWER MOUNTPOINT
 *
 * ARGS: "allow" or "deny" (the default), then optionally ",TIMEOUT_MS"
 * (default 1000).  Opens reach the daemon only on a mount that sends them:
 * loaded at mount, this filter (which handles OPEN without
 * VN_FILTER_OPENS_SKIPPABLE) turns skipped opens off; loaded live with
 * `veneer filter load`, the mount needs --opens=send.  See the tutorial in
 * docs/filter-api.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <veneer/filter.h>

/* How much of a file's start goes with the question. */
#define SCAN_HEAD 64

static bool default_allow;
static int timeout_ms = 1000;
static long asked, answered, timed_out, unconnected, excluded, interrupted;	/* atomics */

static void count(long *counter)
{
	__atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

static void resume(struct vn_op *op, bool allow)
{
	if (allow) {
		vn_op_resume(op, VN_PASS);
		return;
	}
	op->error = -EACCES;
	vn_op_resume(op, VN_COMPLETE);
}

static void decided(struct vn_filter *f, void *ctx, int error, const void *reply, size_t len)
{
	struct vn_op *op = ctx;
	if (error == -EINTR) {
		/* the application gave up: nothing to decide */
		count(&interrupted);
		op->error = -EINTR;
		vn_op_resume(op, VN_COMPLETE);
		return;
	}
	bool allow = default_allow;
	if (error == 0) {
		count(&answered);
		if (len == 5 && !memcmp(reply, "allow", 5))
			allow = true;
		else if (len == 4 && !memcmp(reply, "deny", 4))
			allow = false;
	} else {
		count(error == -ETIMEDOUT ? &timed_out : &unconnected);
	}
	resume(op, allow);
}

/*
 * Appends a NUL and the first bytes of OP's file at MSG + LEN, read below
 * the stack: no filter runs for this read, this one included, so it
 * neither recurses into open_pre nor waits for a worker.  Returns the new
 * length (LEN when there is nothing to read).
 */
static size_t add_head(const struct vn_op *op, char *msg, size_t len)
{
	if (!S_ISREG(vn_node_mode(op->node)))
		return len;	/* a FIFO or a device: reading it would take its data */
	int fd = vn_real_open(op->node, O_RDONLY | O_NONBLOCK);
	if (fd < 0)
		return len;
	ssize_t n = pread(fd, msg + len + 1, SCAN_HEAD, 0);
	close(fd);
	if (n < 0)
		return len;
	msg[len] = '\0';
	return len + 1 + (size_t)n;
}

static enum vn_verdict open_pre(struct vn_filter *f, struct vn_op *op, void **post)
{
	/* execve() opens the file with the kernel's exec flag; dlopen() is a plain read open */
	const char *verb = op->in.open.flags & VN_OPEN_EXEC ? "exec " : "open ";
	char msg[PATH_MAX + 8 + SCAN_HEAD];
	strcpy(msg, verb);
	/* a path that cannot be built is asked about as "?": the program or the default decides */
	if (vn_node_path(op->node, msg + 5, PATH_MAX + 1) < 0)
		strcpy(msg + 5, "?");
	size_t len = add_head(op, msg, strlen(msg));
	int r = vn_port_ask(f, "policy", op, msg, len, timeout_ms, decided, op);
	if (r == 0) {
		count(&asked);
		return VN_PENDING;
	}
	if (r == -EDEADLK) {	/* the policy program's own open */
		count(&excluded);
		return VN_PASS;
	}
	count(&unconnected);
	if (default_allow)
		return VN_PASS;
	op->error = -EACCES;
	return VN_COMPLETE;
}

static int stats(struct vn_filter *f, void *priv, const void *msg, size_t len, void **ret_reply,
		 size_t *ret_len)
{
	char *text;
	int n = asprintf(&text, "asked=%ld answered=%ld timed_out=%ld unconnected=%ld excluded=%ld "
			 "interrupted=%ld",
			 __atomic_load_n(&asked, __ATOMIC_RELAXED),
			 __atomic_load_n(&answered, __ATOMIC_RELAXED),
			 __atomic_load_n(&timed_out, __ATOMIC_RELAXED),
			 __atomic_load_n(&unconnected, __ATOMIC_RELAXED),
			 __atomic_load_n(&excluded, __ATOMIC_RELAXED),
			 __atomic_load_n(&interrupted, __ATOMIC_RELAXED));
	if (n < 0)
		return -ENOMEM;
	*ret_reply = text;
	*ret_len = (size_t)n;
	return 0;
}

static int unused(struct vn_filter *f, void *priv, const void *msg, size_t len,
		  void **ret_reply, size_t *ret_len)
{
	return -EOPNOTSUPP;	/* the policy port is for questions, not messages */
}

static int attach(struct vn_filter *f, const char *args)
{
	default_allow = args && !strncmp(args, "allow", 5);
	const char *comma = args ? strchr(args, ',') : NULL;
	timeout_ms = comma ? atoi(comma + 1) : 1000;
	if (timeout_ms <= 0 || timeout_ms > VN_PORT_MAX_TIMEOUT_MS)
		return -EINVAL;
	int r = vn_port_open(f, "policy", unused, NULL);
	return r == 0 ? vn_port_open(f, "stats", stats, NULL) : r;
}

static const struct vn_filter_handler handlers[] = {
	{ VN_OP_OPEN, open_pre, NULL },
	{ VN_OP_NONE, NULL, NULL },
};

const struct vn_filter_ops vn_filter_entry = {
	.api_version = VN_FILTER_API_VERSION,
	.size = sizeof(struct vn_filter_ops),
	.name = "scanner",
	.altitude = 600,
	.attach = attach,
	.handlers = handlers,
};
