/*
 * The CLI's end of the control socket: find the socket from the mount
 * point, send one request, wait (at most 60 s) for the reply.  It does
 * not print anything; the messages go back to the caller in err.
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

int control_call(const char *mountpoint, const char *verb, int nargs, const char *const *args,
		 char **ret_text, char *err, size_t errlen)
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
	r = control_msg_recv(fd, deadline, -1, &body, &len);
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
out_close:
	close(fd);
	return r;
}
