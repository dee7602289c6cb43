/*
 * The CLI's end of the control socket: find the socket from the mount
 * point, send one request, wait (at most 60 s) for the reply, or for a
 * streaming verb keep receiving until the daemon or the caller ends it.
 * It does not print anything; the messages go back to the caller in err.
 *
 * The socket lives in the runtime directory of the mount's owner, as the
 * kernel records it (user_id= in /proc/self/mountinfo): the caller's own
 * when it owns the mount, /run/veneer for root's mounts, /run/user/UID/veneer
 * (systemd's XDG_RUNTIME_DIR) for another user's.  So root can control
 * every user's mount, and another user reaches root's socket and is
 * refused there (by the directory's mode, or by SO_PEERCRED).
 */
#include "control/control.h"
#include "control/control_proto.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Undoes mountinfo's octal escapes (\040 for a space...) in place. */
static void unescape_octal(char *s)
{
	char *out = s;
	for (char *in = s; *in; in++) {
		if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
		    in[3] >= '0' && in[3] <= '7') {
			*out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
			in += 3;
		} else {
			*out++ = *in;
		}
	}
	*out = '\0';
}

/* The user_id= of the FUSE mount at MOUNTPOINT: 0 and *ret_uid, or -ENOENT. */
static int mount_owner(const char *mountpoint, uid_t *ret_uid)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	int r = -ENOENT;
	/* the last match wins: it is the mount on top */
	while (getline(&line, &cap, f) > 0) {
		char *save, *field = strtok_r(line, " ", &save);
		for (int i = 0; field && i < 4; i++)
			field = strtok_r(NULL, " ", &save);
		if (!field)
			continue;
		unescape_octal(field);
		if (strcmp(field, mountpoint))
			continue;
		char *rest = save ? strstr(save, " - ") : NULL;
		char *opt = rest ? strstr(rest, "user_id=") : NULL;
		if (opt) {
			*ret_uid = (uid_t)strtoul(opt + 8, NULL, 10);
			r = 0;
		}
	}
	free(line);
	fclose(f);
	return r;
}

static int connect_path(const char *path, int *ret_fd)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/*
 * The socket of the mount's owner: the daemon puts it in its own runtime
 * directory, so a caller that is not the owner looks there (root's
 * /run/veneer, or systemd's /run/user/UID for other users).
 */
static int owner_socket_path(const char *mountpoint, char *path, size_t size)
{
	uid_t owner = 0;
	if (getenv("VENEER_RUNTIME_DIR") || mount_owner(mountpoint, &owner) < 0 ||
	    owner == geteuid())
		return control_socket_path(mountpoint, geteuid(), path, size);
	char dir[64];
	if (owner == 0)
		snprintf(dir, sizeof(dir), "/run/veneer");
	else
		snprintf(dir, sizeof(dir), "/run/user/%u/veneer", (unsigned)owner);
	return control_socket_path_in(dir, mountpoint, path, size);
}

/* How often a stream client looks at its stop flag. */
#define STREAM_POLL_MS 200
/* How long a stopped stream client still receives what the daemon held. */
#define STREAM_DRAIN_MS 3000

/*
 * Waits for the reply to arrive (0), looking at *STOP (when not NULL)
 * every STREAM_POLL_MS: -ECANCELED once it is set.  -ETIMEDOUT after
 * DEADLINE.
 */
static int wait_reply(int fd, int64_t deadline, volatile int *stop)
{
	for (;;) {
		if (stop && __atomic_load_n(stop, __ATOMIC_RELAXED))
			return -ECANCELED;
		int64_t step = control_deadline(STREAM_POLL_MS);
		int r = control_wait_fd(fd, POLLIN, stop && step < deadline ? step : deadline, -1);
		if (r != -ETIMEDOUT || control_deadline(0) >= deadline)
			return r;
	}
}

/* Connects to MOUNTPOINT's daemon, or explains in err why not. */
static int control_connect(const char *mountpoint, int *ret_fd, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int r = owner_socket_path(mountpoint, path, sizeof(path));
	if (r == -ENOENT) {
		snprintf(err, errlen, "XDG_RUNTIME_DIR is not set: cannot find the control socket "
				      "of '%s'", mountpoint);
		return r;
	}
	if (r < 0) {
		snprintf(err, errlen, "no control socket path for '%s': %s", mountpoint,
			 strerror(-r));
		return r;
	}
	r = connect_path(path, ret_fd);
	if (r == -ENOENT || r == -ECONNREFUSED)
		snprintf(err, errlen, "no veneer mount at %s (no control socket at %s)", mountpoint,
			 path);
	else if (r == -EACCES)
		snprintf(err, errlen, "permission denied: cannot connect to %s", path);
	else if (r < 0)
		snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(-r));
	return r;
}

/*
 * Connects, sends VERB ARGS and receives the reply: 0 with *ret_text on
 * "ok", else -errno with err.  *ret_fd stays open on success (the stream
 * continues on it).  STOP, when not NULL, is checked every STREAM_POLL_MS
 * while waiting for the reply (-ECANCELED).
 */
static int request(const char *mountpoint, const char *verb, int nargs, const char *const *args,
		   volatile int *stop, int *ret_fd, char **ret_text, char *err, size_t errlen)
{
	if (nargs < 0 || nargs + 1 > CONTROL_MAX_FIELDS) {
		snprintf(err, errlen, "too many arguments");
		return -EINVAL;
	}
	const char *fields[CONTROL_MAX_FIELDS];
	fields[0] = verb;
	for (int i = 0; i < nargs; i++)
		fields[i + 1] = args[i];
	int fd;
	int r = control_connect(mountpoint, &fd, err, errlen);
	if (r < 0)
		return r;
	/* one deadline for the whole exchange: the daemon may take a while to attach */
	int64_t deadline = control_deadline(CONTROL_CLIENT_TIMEOUT_MS);
	char *body = NULL;
	size_t len;
	r = control_msg_send(fd, deadline, -1, nargs + 1, fields);
	if (r < 0) {
		snprintf(err, errlen, "cannot send the request: %s", strerror(-r));
		goto out_close;
	}
	r = wait_reply(fd, deadline, stop);
	if (r == 0)
		r = control_msg_recv(fd, deadline, -1, &body, &len);
	if (r == -ECANCELED)
		goto out_close;
	if (r < 0) {
		if (r == -ETIMEDOUT)
			snprintf(err, errlen, "the daemon did not answer in time");
		else
			snprintf(err, errlen, "no valid reply from the daemon: %s", strerror(-r));
		goto out_close;
	}
	int nfields;
	char *reply[CONTROL_MAX_FIELDS];
	r = control_msg_decode(body, len, &nfields, reply);
	if (r < 0) {
		snprintf(err, errlen, "malformed reply from the daemon");
		r = -EPROTO;
		goto out_free;
	}
	r = control_reply_parse(nfields, reply, ret_text, err, errlen);
out_free:
	free(body);
	if (r == 0) {
		*ret_fd = fd;
		return 0;
	}
out_close:
	close(fd);
	return r;
}

int control_call(const char *mountpoint, const char *verb, int nargs, const char *const *args,
		 char **ret_text, char *err, size_t errlen)
{
	int fd;
	int r = request(mountpoint, verb, nargs, args, NULL, &fd, ret_text, err, errlen);
	if (r == 0)
		close(fd);
	return r;
}

/*
 * Waits for the next stream message until DEADLINE: 1 when one is there,
 * 0 when the daemon closed the stream at a message boundary, -ECANCELED
 * once *stop is set (when STOP is not NULL), -ETIMEDOUT, or -errno.
 */
static int stream_wait(int fd, volatile int *stop, int64_t deadline)
{
	for (;;) {
		if (stop && __atomic_load_n(stop, __ATOMIC_RELAXED))
			return -ECANCELED;
		int64_t step = control_deadline(STREAM_POLL_MS);
		int r = control_wait_fd(fd, POLLIN, step < deadline ? step : deadline, -1);
		if (r == -ETIMEDOUT && control_deadline(0) < deadline)
			continue;
		if (r < 0)
			return r;
		char c;
		ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n == 1)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
}

/* Receives one chunk of the stream and hands it to on_text. */
static int stream_chunk(int fd, int (*on_text)(void *arg, const char *text, size_t len),
			void *arg, char *err, size_t errlen)
{
	char *body;
	size_t len;
	/* the rest of a message follows its first byte at once */
	int r = control_msg_recv(fd, control_deadline(CONTROL_CLIENT_TIMEOUT_MS), -1, &body, &len);
	if (r < 0) {
		snprintf(err, errlen, "lost the stream from the daemon: %s", strerror(-r));
		return r;
	}
	int nfields;
	char *fields[CONTROL_MAX_FIELDS];
	if (control_msg_decode(body, len, &nfields, fields) < 0 || nfields != 1) {
		free(body);
		snprintf(err, errlen, "malformed message from the daemon");
		return -EPROTO;
	}
	r = on_text(arg, fields[0], len - 1);
	free(body);
	return r;
}

/*
 * Once *stop is set the client shuts its writing side: the daemon then
 * sends what the stream already holds and closes.  That is received for
 * at most STREAM_DRAIN_MS (the daemon allows itself less).
 */
int control_stream(const char *mountpoint, const char *verb, int nargs, const char *const *args,
		   int (*on_text)(void *arg, const char *text, size_t len), void *arg,
		   volatile int *stop, char *err, size_t errlen)
{
	int fd;
	char *text = NULL;
	int r = request(mountpoint, verb, nargs, args, stop, &fd, &text, err, errlen);
	if (r == -ECANCELED)
		return 0;
	if (r < 0)
		return r;
	r = text[0] ? on_text(arg, text, strlen(text)) : 0;
	free(text);
	int64_t deadline = INT64_MAX / 2;
	bool draining = false;
	while (r == 0) {
		r = stream_wait(fd, draining ? NULL : stop, deadline);
		if (r == 1) {
			r = stream_chunk(fd, on_text, arg, err, errlen);
		} else if (r == -ECANCELED) {
			draining = true;
			deadline = control_deadline(STREAM_DRAIN_MS);
			(void)shutdown(fd, SHUT_WR);
			r = 0;
		} else if (r == 0 || (r == -ETIMEDOUT && draining)) {
			/* the daemon ended the stream, or our caller did */
			r = 0;
			break;
		} else {
			snprintf(err, errlen, "lost the stream from the daemon: %s", strerror(-r));
		}
	}
	close(fd);
	return r;
}
