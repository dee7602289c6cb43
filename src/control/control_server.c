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
 *
 * Streaming verbs (trace) are the exception: once the request is read and
 * the caller checked, the connection goes to a thread of its own (at most
 * CONTROL_MAX_STREAMS), which opens the stream and sends what it produces
 * until the client hangs up or the server stops.  So stream handlers run
 * concurrently with the verb handler and with each other.
 * It does not know what the verbs mean; the handler does.
 */
#include "control/control.h"
#include "control/control_proto.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
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
 * One streaming connection and its thread.  fd, body and fields belong to
 * the thread while it runs; the entry is freed by stream_reap() after the
 * thread was joined.
 */
struct control_stream {
	struct control_server *srv;
	int fd;
	char *body;			/* the request; fields point into it */
	int nfields;
	char *fields[CONTROL_MAX_FIELDS];
	pthread_t thread;		/* written and joined by the control thread or stop */
	pid_t peer;			/* the client's process, from SO_PEERCRED */
	bool done;			/* protected by srv->streams_lock */
	struct control_stream *next;	/* protected by srv->streams_lock */
};

/*
 * Everything is set before the thread starts and read-only afterwards,
 * except the stop eventfd's counter, which is the threads' only signal,
 * and the stream list.
 */
struct control_server {
	int listen_fd;
	int stop_fd;			/* eventfd: readable once stop was asked */
	pthread_t thread;
	/* leaf: nothing is taken inside it, and it is never held across I/O */
	pthread_mutex_t streams_lock;
	struct control_stream *streams;	/* protected by streams_lock */
	unsigned int nstreams;		/* protected by streams_lock: not yet done */
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

/* ---- streams ---- */

/* How long next() may wait: also how often the thread looks for hang-up and stop. */
#define STREAM_POLL_MS 200
/* How long an orderly end (the client shut its side) may go on sending. */
#define STREAM_DRAIN_MS 1000
/* A message body is the text plus its NUL, at most CONTROL_MAX_MESSAGE. */
#define STREAM_CHUNK_MAX (CONTROL_MAX_MESSAGE - 1)

enum stream_state {
	STREAM_GOING,
	STREAM_DRAIN,			/* the client shut its side: send what is left, then end */
	STREAM_END,			/* the client is gone or the server stops */
};

/* Looks at the client and the stop eventfd; never waits. */
static enum stream_state stream_state(struct control_server *srv, int fd)
{
	struct pollfd pfd[2] = {
		{ .fd = fd, .events = POLLRDHUP },
		{ .fd = srv->stop_fd, .events = POLLIN },
	};
	int r = poll(pfd, 2, 0);
	if (r < 0)
		return errno == EINTR ? STREAM_GOING : STREAM_END;
	if (pfd[1].revents || (pfd[0].revents & (POLLHUP | POLLERR)))
		return STREAM_END;
	/* POLLRDHUP alone: shutdown(SHUT_WR), the client still reads */
	return pfd[0].revents ? STREAM_DRAIN : STREAM_GOING;
}

/*
 * Sends LEN bytes of TEXT as messages of one field each, cut at a line end
 * where the text is too long for one.  A NUL (no text of ours holds one)
 * cannot travel inside a field: it is dropped.  Stop cancels a wait for
 * the client through the stop eventfd, and a client that dies is seen at
 * once (POLLHUP).
 */
static int stream_send(struct control_server *srv, int fd, const char *text, size_t len,
		       int64_t deadline)
{
	while (len > 0) {
		if (text[0] == '\0') {
			text++;
			len--;
			continue;
		}
		size_t n = len < STREAM_CHUNK_MAX ? len : STREAM_CHUNK_MAX;
		const char *nul = memchr(text, '\0', n);
		if (nul) {
			n = (size_t)(nul - text);
		} else if (n < len) {
			const char *nl = memrchr(text, '\n', n);
			if (nl)
				n = (size_t)(nl - text) + 1;
		}
		int r = control_msg_send_text(fd, deadline, srv->stop_fd, text, n);
		if (r < 0)
			return r;
		text += n;
		len -= n;
	}
	return 0;
}

/*
 * Sends what next() produces until it fails, the client goes or the server
 * stops.  Waiting for a client that does not read has no deadline while
 * the stream runs: the producer drops records rather than wait for us.
 * A client that shuts its writing side asks for an orderly end: what the
 * stream holds already is sent first (for at most STREAM_DRAIN_MS), so a
 * watcher sees every record up to its stop either shown or counted as
 * dropped.
 */
static void stream_loop(struct control_server *srv, int fd, void *ctx)
{
	const struct control_stream_ops *ops = srv->handler.stream;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int64_t deadline = INT64_MAX / 2;
	bool draining = false;
	for (;;) {
		enum stream_state state = stream_state(srv, fd);
		if (state == STREAM_END)
			break;
		if (state == STREAM_DRAIN && !draining) {
			draining = true;
			deadline = control_deadline(STREAM_DRAIN_MS);
		}
		int r = ops->next(ctx, &buf, &len, &cap, draining ? 0 : STREAM_POLL_MS);
		if (r < 0) {
			log_debug("control: stream ended: %s", strerror(-r));
			break;
		}
		if (len == 0) {
			if (draining)
				break;	/* all sent */
			continue;
		}
		r = stream_send(srv, fd, buf, len, deadline);
		len = 0;
		if (r < 0 || (draining && control_deadline(0) >= deadline)) {
			/* EPIPE/ECONNRESET: the watcher went away; ECANCELED: stop */
			log_debug("control: stream send: %s", strerror(-r));
			break;
		}
	}
	free(buf);
}

static void *stream_thread(void *arg)
{
	struct control_stream *st = arg;
	struct control_server *srv = st->srv;
	const struct control_stream_ops *ops = srv->handler.stream;
	void *ctx = NULL;
	char *text = NULL, msg[256] = "";
	int r = ops->open(srv->handler.arg, st->peer, st->fields[0], st->nfields - 1,
			  st->fields + 1, &ctx, &text, msg, sizeof(msg));
	if (r < 0) {
		(void)control_reply_err(st->fd, control_deadline(CONTROL_SERVER_TIMEOUT_MS),
					srv->stop_fd, -r, msg);
		goto out_close;
	}
	r = control_reply_ok(st->fd, control_deadline(CONTROL_SERVER_TIMEOUT_MS), srv->stop_fd,
			     text);
	free(text);
	if (r == -EMSGSIZE)
		(void)control_reply_err(st->fd, control_deadline(CONTROL_SERVER_TIMEOUT_MS),
					srv->stop_fd, EMSGSIZE, "reply too large");
	else if (r == 0)
		stream_loop(srv, st->fd, ctx);
	ops->close(ctx);
out_close:
	(void)shutdown(st->fd, SHUT_WR);
	close(st->fd);
	free(st->body);
	st->body = NULL;
	pthread_mutex_lock(&srv->streams_lock);
	st->done = true;
	srv->nstreams--;
	pthread_mutex_unlock(&srv->streams_lock);
	return NULL;
}

/* Joins and frees the stream threads that ended (ALL: every one, waiting for them). */
static void stream_reap(struct control_server *srv, bool all)
{
	struct control_stream *ended = NULL;
	pthread_mutex_lock(&srv->streams_lock);
	for (struct control_stream **p = &srv->streams; *p;) {
		struct control_stream *st = *p;
		if (all || st->done) {
			*p = st->next;
			st->next = ended;
			ended = st;
		} else {
			p = &st->next;
		}
	}
	pthread_mutex_unlock(&srv->streams_lock);
	/* joined without the lock: the threads take it on their way out */
	while (ended) {
		struct control_stream *st = ended;
		ended = st->next;
		pthread_join(st->thread, NULL);
		free(st);
	}
}

/*
 * Hands FD and the decoded request (BODY, owned from here on success) to a
 * new stream thread.  -EBUSY when CONTROL_MAX_STREAMS are running.
 */
static int stream_start(struct control_server *srv, int fd, pid_t peer, char *body, int nfields,
			char **fields, char *msg, size_t msglen)
{
	stream_reap(srv, false);
	struct control_stream *st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	st->srv = srv;
	st->fd = fd;
	st->peer = peer;
	st->body = body;
	st->nfields = nfields;
	memcpy(st->fields, fields, (size_t)nfields * sizeof(fields[0]));
	pthread_mutex_lock(&srv->streams_lock);
	if (srv->nstreams >= CONTROL_MAX_STREAMS) {
		pthread_mutex_unlock(&srv->streams_lock);
		free(st);
		snprintf(msg, msglen, "too many watchers (at most %d)", CONTROL_MAX_STREAMS);
		return -EBUSY;
	}
	srv->nstreams++;
	st->next = srv->streams;
	srv->streams = st;
	/* created under the lock, so nobody reaps the entry before st->thread is set */
	int r = -pthread_create(&st->thread, NULL, stream_thread, st);
	if (r < 0) {
		srv->streams = st->next;
		srv->nstreams--;
	}
	pthread_mutex_unlock(&srv->streams_lock);
	if (r < 0) {
		free(st);
		snprintf(msg, msglen, "cannot start a stream: %s", strerror(-r));
	}
	return r;
}

/* ---- requests ---- */

/* Runs an ordinary verb and replies; on failure leaves the reply to the caller. */
static int serve_call(struct control_server *srv, int fd, int nfields, char **fields, char *msg,
		      size_t msglen)
{
	char *text = NULL;
	msg[0] = '\0';
	int r = srv->handler.call(srv->handler.arg, fields[0], nfields - 1, fields + 1, &text, msg,
				  msglen);
	if (r < 0)
		return r;
	r = control_reply_ok(fd, control_deadline(CONTROL_SERVER_TIMEOUT_MS), srv->stop_fd, text);
	free(text);
	if (r == -EMSGSIZE) {
		snprintf(msg, msglen, "reply too large");
		return r;
	}
	/* any other failure: the client is gone, nothing to tell it */
	return 0;
}

/*
 * Checks the caller, reads and decodes its request; on failure replies err
 * itself.  *ret_kept: FD went to a stream thread (the caller must not
 * close it).
 */
static int serve_request(struct control_server *srv, int fd, int64_t deadline, bool *ret_kept)
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
	const struct control_stream_ops *stream = srv->handler.stream;
	if (stream && stream->is_stream(srv->handler.arg, fields[0])) {
		r = stream_start(srv, fd, cred.pid, body, nfields, fields, msg, sizeof(msg));
		if (r < 0)
			goto out_reply;
		*ret_kept = true;
		return 0;
	}
	r = serve_call(srv, fd, nfields, fields, msg, sizeof(msg));
	if (r >= 0)
		goto out_free;
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
	stream_reap(srv, false);
	int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		log_debug("control: accept: %s", strerror(errno));
		return;
	}
	bool kept = false;
	int r = serve_request(srv, fd, control_deadline(CONTROL_SERVER_TIMEOUT_MS), &kept);
	if (r < 0)
		log_debug("control: request failed: %s", strerror(-r));
	if (kept)
		return;
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
	pthread_mutex_init(&srv->streams_lock, NULL);
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
	pthread_mutex_destroy(&srv->streams_lock);
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
	 * No new streams from here on.  Each one sees the stop within
	 * STREAM_POLL_MS, or at once when it waits to send.
	 */
	stream_reap(srv, true);
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
	pthread_mutex_destroy(&srv->streams_lock);
	free(srv);
}
