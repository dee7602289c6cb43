/*
 * The daemon's end of the control socket: one thread that accepts a
 * connection, checks who is calling (SO_PEERCRED), reads one request,
 * hands it to the daemon's handler and writes the reply.
 *
 * Connections are served one at a time, on purpose: attach and detach
 * change the mount's layer table and are rare, so serializing them here
 * spares the handler its own locking against itself.  The cost is that a
 * slow attach (a large image) makes the next client wait in the listen
 * backlog; the client allows 60 s for that.  A client that connects and
 * says nothing is dropped after 5 s, so it cannot block the others.
 * It does not know what the verbs mean; the handler does.
 */
#include "control/control.h"
#include "control/control_proto.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"

/*
 * Everything is set before the thread starts and read-only afterwards,
 * except the stop eventfd's counter, which is the thread's only signal.
 */
struct control_server {
	int listen_fd;
	int stop_fd;			/* eventfd: readable once stop was asked */
	pthread_t thread;
	uid_t owner;
	struct control_handler handler;
	char path[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
	dev_t dev;			/* the socket file we bound, so stop removes */
	ino_t ino;			/* only ours, never a successor's */
};

static int make_addr(const char *path, struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr->sun_path))
		return -ENAMETOOLONG;
	strcpy(addr->sun_path, path);
	return 0;
}

/*
 * Whether a daemon answers at PATH: 0 when it is stale (nobody listens),
 * -EADDRINUSE when somebody does, -EEXIST when PATH is not a socket.
 */
static int probe_existing(const char *path, const struct sockaddr_un *addr)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int r = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	int err = errno;
	close(fd);
	if (r == 0)
		return -EADDRINUSE;
	/* ECONNREFUSED: a socket file left by a daemon that died */
	return err == ECONNREFUSED ? 0 : -err;
}

/*
 * Binds and listens at srv->path, replacing a stale socket file.  The
 * file is made 0600 before listen(), so nobody can connect while it still
 * has the umask's mode (SO_PEERCRED is the real gate anyway).
 */
static int bind_socket(struct control_server *srv)
{
	struct sockaddr_un addr;
	int r = make_addr(srv->path, &addr);
	if (r < 0)
		return r;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		r = -errno;
		if (r != -EADDRINUSE)
			goto out_close;
		r = probe_existing(srv->path, &addr);
		if (r < 0)
			goto out_close;
		log_debug("replacing stale control socket '%s'", srv->path);
		if (unlink(srv->path) < 0 && errno != ENOENT) {
			r = -errno;
			goto out_close;
		}
		if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
			r = -errno;
			goto out_close;
		}
	}
	struct stat st;
	if (chmod(srv->path, 0600) < 0 || lstat(srv->path, &st) < 0 || listen(fd, 8) < 0) {
		r = -errno;
		goto out_unlink;
	}
	srv->dev = st.st_dev;
	srv->ino = st.st_ino;
	srv->listen_fd = fd;
	return 0;
out_unlink:
	(void)unlink(srv->path);
out_close:
	close(fd);
	return r;
}

/* Checks the caller, reads and decodes its request; on failure replies err itself. */
static int serve_request(struct control_server *srv, int fd, int64_t deadline)
{
	char *body = NULL;
	size_t len;
	char msg[256];
	int r = control_msg_recv(fd, deadline, srv->stop_fd, &body, &len);
	struct ucred cred;
	socklen_t credlen = sizeof(cred);
	/* the request was read first so the client sees our answer, not a reset */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) < 0) {
		r = -errno;
		snprintf(msg, sizeof(msg), "cannot identify the caller: %s", strerror(-r));
		goto out_reply;
	}
	if (cred.uid != srv->owner && cred.uid != 0) {
		log_debug("control: refused uid %u", (unsigned)cred.uid);
		r = -EACCES;
		snprintf(msg, sizeof(msg),
			 "permission denied: only uid %u or root may control this mount",
			 (unsigned)srv->owner);
		goto out_reply;
	}
	if (r == -ECANCELED)
		goto out_free;
	if (r < 0) {
		snprintf(msg, sizeof(msg), "bad request: %s", strerror(-r));
		goto out_reply;
	}
	int nfields;
	char *fields[CONTROL_MAX_FIELDS];
	r = control_msg_decode(body, len, &nfields, fields);
	if (r < 0 || !fields[0][0]) {
		r = -EINVAL;
		snprintf(msg, sizeof(msg), "bad request: malformed message");
		goto out_reply;
	}
	char *text = NULL;
	msg[0] = '\0';
	r = srv->handler.call(srv->handler.arg, fields[0], nfields - 1, fields + 1, &text, msg,
			      sizeof(msg));
	if (r >= 0) {
		r = control_reply_ok(fd, control_deadline(CONTROL_SERVER_TIMEOUT_MS),
				     srv->stop_fd, text);
		free(text);
		if (r == -EMSGSIZE) {
			snprintf(msg, sizeof(msg), "reply too large");
			goto out_reply;
		}
		goto out_free;
	}
out_reply:
	/* a fresh deadline: the reading may have used up the first one */
	(void)control_reply_err(fd, control_deadline(CONTROL_SERVER_TIMEOUT_MS), srv->stop_fd,
				-r, msg);
out_free:
	free(body);
	return r < 0 ? r : 0;
}

static void serve_one(struct control_server *srv)
{
	int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		log_debug("control: accept: %s", strerror(errno));
		return;
	}
	int r = serve_request(srv, fd, control_deadline(CONTROL_SERVER_TIMEOUT_MS));
	if (r < 0)
		log_debug("control: request failed: %s", strerror(-r));
	/* tell the client the reply is complete even if it was sent before the request ended */
	(void)shutdown(fd, SHUT_WR);
	close(fd);
}

static void *control_thread(void *arg)
{
	struct control_server *srv = arg;
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = srv->listen_fd, .events = POLLIN },
			{ .fd = srv->stop_fd, .events = POLLIN },
		};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_debug("control: poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents)
			serve_one(srv);
	}
	return NULL;
}

int control_server_start(const char *mountpoint, uid_t owner, const struct control_handler *h,
			 struct control_server **ret)
{
	struct control_server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->owner = owner;
	srv->handler = *h;
	srv->listen_fd = -1;
	char dir[PATH_MAX];
	/* the location follows who runs the daemon: that is the directory it can create */
	int r = control_socket_dir(geteuid(), dir, sizeof(dir));
	if (r < 0)
		goto out_free;
	r = control_socket_path_in(dir, mountpoint, srv->path, sizeof(srv->path));
	if (r < 0)
		goto out_free;
	r = control_make_dir(dir, geteuid());
	if (r < 0)
		goto out_free;
	srv->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (srv->stop_fd < 0) {
		r = -errno;
		goto out_free;
	}
	r = bind_socket(srv);
	if (r < 0)
		goto out_close_stop;
	r = -pthread_create(&srv->thread, NULL, control_thread, srv);
	if (r < 0)
		goto out_unbind;
	*ret = srv;
	return 0;
out_unbind:
	(void)unlink(srv->path);
	close(srv->listen_fd);
out_close_stop:
	close(srv->stop_fd);
out_free:
	free(srv);
	return r;
}

void control_server_stop(struct control_server *srv)
{
	if (!srv)
		return;
	uint64_t one = 1;
	/* level-triggered: the counter stays readable, so every later poll sees it too */
	if (write(srv->stop_fd, &one, sizeof(one)) != sizeof(one))
		log_debug("control: cannot signal stop: %s", strerror(errno));
	pthread_join(srv->thread, NULL);
	/*
	 * Remove the file only if it is still the one we bound: after a
	 * takeover (stale-socket replacement by another daemon) it is not.
	 * The check and the unlink are not atomic; the window is harmless
	 * because a second daemon on the same mount point is already refused.
	 */
	struct stat st;
	if (lstat(srv->path, &st) == 0 && st.st_dev == srv->dev && st.st_ino == srv->ino)
		(void)unlink(srv->path);
	close(srv->listen_fd);
	close(srv->stop_fd);
	free(srv);
}
