/*
 * Unit test of the control socket: socket naming, the wire format and its
 * malformed inputs, and a real server with a fake handler in a temporary
 * $VENEER_RUNTIME_DIR (stale sockets, a second server, garbage, the
 * SO_PEERCRED gate).  It does not mount anything.
 */
#include "control/control.h"
#include "control/control_proto.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
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
#include <sys/wait.h>
#include <unistd.h>

#include "../tests/unit.h"

static char base[PATH_MAX];	/* the temporary VENEER_RUNTIME_DIR */

/* What the fake handler was last asked, read by the test thread. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static char seen[256];		/* protected by seen_lock */

static int fake_call(void *arg, const char *verb, int nargs, char **args, char **ret_text,
		     char *err, size_t errlen)
{
	pthread_mutex_lock(&seen_lock);
	snprintf(seen, sizeof(seen), "%s/%d/%s/%s", verb, nargs, nargs > 0 ? args[0] : "",
		 nargs > 1 ? args[1] : "");
	pthread_mutex_unlock(&seen_lock);
	(*(int *)arg)++;
	if (!strcmp(verb, "attach") && nargs == 2) {
		*ret_text = strdup("L1");
		return 0;
	}
	if (!strcmp(verb, "detach") && nargs == 1) {
		if (!strcmp(args[0], "missing")) {
			snprintf(err, errlen, "no layer '%s'", args[0]);
			return -ENOENT;
		}
		*ret_text = NULL;
		return 0;
	}
	if (!strcmp(verb, "status") && nargs == 1) {
		*ret_text = strdup(!strcmp(args[0], "json") ? "{\"layers\":[]}\n" : "no layers\n");
		return 0;
	}
	snprintf(err, errlen, "unknown command '%s'", verb);
	return -EINVAL;
}

static bool seen_is(const char *want)
{
	pthread_mutex_lock(&seen_lock);
	bool same = !strcmp(seen, want);
	pthread_mutex_unlock(&seen_lock);
	return same;
}

static int path_of(const char *dir, const char *mp, char *buf)
{
	return control_socket_path_in(dir, mp, buf, PATH_MAX);
}

static void test_naming(void)
{
	char p[PATH_MAX], q[PATH_MAX];
	CHECK(path_of("/run/veneer", "/home/ann/my-data", p) == 0);
	CHECK(!strcmp(p, "/run/veneer/home-ann-my\\x2ddata.sock"));
	CHECK(path_of("/run/veneer", "/", p) == 0 && !strcmp(p, "/run/veneer/-.sock"));
	CHECK(path_of("/d", "/.hidden/a b", p) == 0 && !strcmp(p, "/d/\\x2ehidden-a\\x20b.sock"));
	CHECK(path_of("/d", "/a-b", p) == 0 && path_of("/d", "/a/b", q) == 0 && strcmp(p, q));
	CHECK(path_of("/d", "relative", p) == -EINVAL);
	CHECK(path_of("/d", "/a//b", p) == -EINVAL);
	CHECK(path_of("/d", "/a/../b", p) == -EINVAL);
	CHECK(path_of("/d", "/a/./b", p) == -EINVAL);
	CHECK(path_of("/d", "/a/", p) == -EINVAL);

	/* too long for sun_path: hash plus a readable tail, still unique */
	char mp1[300], mp2[300];
	memset(mp1, 'x', sizeof(mp1));
	mp1[0] = '/';
	mp1[sizeof(mp1) - 1] = '\0';
	memcpy(mp2, mp1, sizeof(mp2));
	mp2[100] = 'y';
	CHECK(path_of("/run/user/1000/veneer", mp1, p) == 0);
	CHECK(path_of("/run/user/1000/veneer", mp2, q) == 0);
	CHECK(strlen(p) <= 107 && strlen(q) <= 107 && strcmp(p, q));
	CHECK(!strncmp(p, "/run/user/1000/veneer/~", 23));
	CHECK(p[23 + 16] == '-' && !strcmp(p + strlen(p) - 10, "xxxxx.sock"));
	/* a tail never starts inside a \xNN escape */
	char dashes[120] = "/";
	memset(dashes + 1, '-', 100);
	CHECK(path_of("/run/veneer", dashes, p) == 0 && strlen(p) <= 107);
	CHECK(p[12 + 17] == '-' && p[12 + 18] == '\\');
	char longdir[120];
	memset(longdir, 'd', sizeof(longdir));
	longdir[0] = '/';
	longdir[105] = '\0';
	CHECK(path_of(longdir, "/a", p) == -ENAMETOOLONG);
	CHECK(control_socket_path_in("/d", "/a", p, 5) == -ENAMETOOLONG);

	unsetenv("VENEER_RUNTIME_DIR");
	unsetenv("XDG_RUNTIME_DIR");
	CHECK(control_socket_path("/a", 1000, p, sizeof(p)) == -ENOENT);
	CHECK(control_socket_path("/a", 0, p, sizeof(p)) == 0 && !strcmp(p, "/run/veneer/a.sock"));
	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	CHECK(control_socket_path("/a", 1000, p, sizeof(p)) == 0 &&
	      !strcmp(p, "/run/user/1000/veneer/a.sock"));
	setenv("VENEER_RUNTIME_DIR", base, 1);
	CHECK(control_socket_dir(1000, p, sizeof(p)) == 0 && !strncmp(p, base, strlen(base)));
}

static void test_make_dir(void)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/mk/a/b", base);
	CHECK(control_make_dir(dir, geteuid()) == 0);
	struct stat st;
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
	CHECK(control_make_dir(dir, geteuid()) == 0);
	CHECK(control_make_dir(dir, geteuid() + 1) == -EPERM);
	CHECK(chmod(dir, 0777) == 0);
	CHECK(control_make_dir(dir, geteuid()) == -EPERM);
}

static void test_encode_decode(void)
{
	const char *in[] = { "attach", "/img/a.sqfs", "/" };
	char *buf;
	size_t len;
	CHECK(control_msg_encode(3, in, &buf, &len) == 0);
	CHECK(len == 4 + 7 + 12 + 2);
	CHECK(control_msg_length((unsigned char *)buf) == len - 4);
	int n;
	char *f[CONTROL_MAX_FIELDS];
	CHECK(control_msg_decode(buf + 4, len - 4, &n, f) == 0);
	CHECK(n == 3 && !strcmp(f[0], "attach") && !strcmp(f[1], "/img/a.sqfs") && !strcmp(f[2], "/"));
	free(buf);

	const char *empty[] = { "ok", "" };
	CHECK(control_msg_encode(2, empty, &buf, &len) == 0);
	CHECK(control_msg_decode(buf + 4, len - 4, &n, f) == 0 && n == 2 && !f[1][0]);
	free(buf);

	char body[64] = "abc";
	CHECK(control_msg_decode(body, 0, &n, f) == -EINVAL);
	CHECK(control_msg_decode(body, 3, &n, f) == -EINVAL);	/* no final NUL */
	char many[2 * (CONTROL_MAX_FIELDS + 1)];
	for (size_t i = 0; i < sizeof(many); i += 2)
		many[i] = 'a', many[i + 1] = '\0';
	CHECK(control_msg_decode(many, sizeof(many), &n, f) == -EINVAL);
	CHECK(control_msg_decode(many, sizeof(many) - 2, &n, f) == 0 && n == CONTROL_MAX_FIELDS);

	const char *fields[CONTROL_MAX_FIELDS + 1];
	for (int i = 0; i <= CONTROL_MAX_FIELDS; i++)
		fields[i] = "a";
	CHECK(control_msg_encode(CONTROL_MAX_FIELDS + 1, fields, &buf, &len) == -EINVAL);
	CHECK(control_msg_encode(0, fields, &buf, &len) == -EINVAL);
	char *huge = malloc(CONTROL_MAX_MESSAGE + 1);
	CHECK(huge != NULL);
	memset(huge, 'z', CONTROL_MAX_MESSAGE);
	huge[CONTROL_MAX_MESSAGE] = '\0';
	const char *big[] = { huge };
	CHECK(control_msg_encode(1, big, &buf, &len) == -EMSGSIZE);
	free(huge);

	char err[64];
	char *text;
	char ok0[] = "ok", ok1[] = "hello";
	char *ok[] = { ok0, ok1 };
	CHECK(control_reply_parse(2, ok, &text, err, sizeof(err)) == 0 && !strcmp(text, "hello"));
	free(text);
	char e0[] = "err", e1[] = "2", e2[] = "nope", bad[] = "x2";
	char *e[] = { e0, e1, e2 };
	CHECK(control_reply_parse(3, e, &text, err, sizeof(err)) == -ENOENT && !strcmp(err, "nope"));
	e[1] = bad;
	CHECK(control_reply_parse(3, e, &text, err, sizeof(err)) == -EPROTO);
	CHECK(control_reply_parse(1, ok, &text, err, sizeof(err)) == -EPROTO);
}

/* control_msg_recv() on a socketpair fed with RAW then closed (or not). */
static int recv_raw(const void *raw, size_t len, bool close_writer, int cancel_fd)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if (len && write(sv[1], raw, len) != (ssize_t)len)
		return -EIO;
	if (close_writer)
		close(sv[1]);
	char *body = NULL;
	size_t blen;
	int r = control_msg_recv(sv[0], control_deadline(200), cancel_fd, &body, &blen);
	free(body);
	close(sv[0]);
	if (!close_writer)
		close(sv[1]);
	return r;
}

static void test_recv_malformed(void)
{
	static const unsigned char trunc_header[] = { 5, 0 };
	static const unsigned char too_long[] = { 0x01, 0x00, 0x10, 0x00 };	/* 1 MiB + 1 */
	static const unsigned char zero[] = { 0, 0, 0, 0 };
	static const unsigned char trunc_body[] = { 10, 0, 0, 0, 'a', 'b', 'c' };
	static const unsigned char good[] = { 3, 0, 0, 0, 'o', 'k', 0 };
	CHECK(recv_raw(trunc_header, sizeof(trunc_header), true, -1) == -EPROTO);
	CHECK(recv_raw(too_long, sizeof(too_long), true, -1) == -EMSGSIZE);
	CHECK(recv_raw(zero, sizeof(zero), true, -1) == -EINVAL);
	CHECK(recv_raw(trunc_body, sizeof(trunc_body), true, -1) == -EPROTO);
	CHECK(recv_raw(good, sizeof(good), true, -1) == 0);
	CHECK(recv_raw(NULL, 0, false, -1) == -ETIMEDOUT);
	int efd = eventfd(1, EFD_CLOEXEC);
	CHECK(efd >= 0);
	CHECK(recv_raw(NULL, 0, false, efd) == -ECANCELED);
	close(efd);
}

/* Sends RAW bytes to the socket at PATH and returns the errno of the err reply. */
static int raw_request(const char *path, const void *raw, size_t len)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return -1000;
	if (len && write(fd, raw, len) != (ssize_t)len)
		return -1001;
	char *body = NULL, *f[CONTROL_MAX_FIELDS], *text = NULL, err[256];
	size_t blen;
	int n, r = control_msg_recv(fd, control_deadline(10000), -1, &body, &blen);
	if (r == 0)
		r = control_msg_decode(body, blen, &n, f);
	if (r == 0)
		r = control_reply_parse(n, f, &text, err, sizeof(err));
	free(text);
	free(body);
	close(fd);
	return r;
}

static void test_server_calls(const char *mp, const char *path)
{
	char err[256], *text;
	const char *attach[] = { "/img/a.sqfs", "/opt" };
	CHECK(control_call(mp, "attach", 2, attach, &text, err, sizeof(err)) == 0);
	CHECK(!strcmp(text, "L1") && seen_is("attach/2//img/a.sqfs//opt"));
	free(text);
	const char *missing[] = { "missing" };
	CHECK(control_call(mp, "detach", 1, missing, &text, err, sizeof(err)) == -ENOENT);
	CHECK(!strcmp(err, "no layer 'missing'"));
	const char *l1[] = { "L1" };
	CHECK(control_call(mp, "detach", 1, l1, &text, err, sizeof(err)) == 0 && !text[0]);
	free(text);
	const char *json[] = { "json" };
	CHECK(control_call(mp, "status", 1, json, &text, err, sizeof(err)) == 0);
	CHECK(!strcmp(text, "{\"layers\":[]}\n"));
	free(text);
	CHECK(control_call(mp, "frobnicate", 0, NULL, &text, err, sizeof(err)) == -EINVAL);
	CHECK(!strcmp(err, "unknown command 'frobnicate'"));

	static const unsigned char no_nul[] = { 5, 0, 0, 0, 'a', 'b', 'c', 'd', 'e' };
	static const unsigned char too_long[] = { 0xff, 0xff, 0xff, 0x7f };
	static const unsigned char empty_verb[] = { 1, 0, 0, 0, 0 };
	CHECK(raw_request(path, no_nul, sizeof(no_nul)) == -EINVAL);
	CHECK(raw_request(path, too_long, sizeof(too_long)) == -EMSGSIZE);
	CHECK(raw_request(path, empty_verb, sizeof(empty_verb)) == -EINVAL);
	/* a client that says nothing is answered and dropped after 5 s */
	CHECK(raw_request(path, NULL, 0) == -ETIMEDOUT);
	/* and the server still works afterwards */
	CHECK(control_call(mp, "status", 1, json, &text, err, sizeof(err)) == 0);
	free(text);
}

/* In a child running as nobody: control_call must be refused with EXPECT_MSG. */
static bool refused_as_nobody(const char *mp, const char *expect_msg)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(3);
		char err[256], *text;
		const char *json[] = { "json" };
		int r = control_call(mp, "status", 1, json, &text, err, sizeof(err));
		if (r != -EACCES) {
			fprintf(stderr, "# child: %d %s\n", r, err);
			_exit(1);
		}
		if (!strstr(err, expect_msg)) {
			fprintf(stderr, "# child message: %s\n", err);
			_exit(2);
		}
		_exit(0);
	}
	int status;
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

static void test_peercred(const char *mp, const char *path)
{
	if (geteuid() != 0) {
		printf("ok %d # skip SO_PEERCRED refusal needs root\n", ++unit_count);
		return;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/veneer", base);
	/* the directory's mode stops strangers first; the socket refuses them too */
	CHECK(chmod(base, 0711) == 0 && chmod(dir, 0711) == 0);
	CHECK(refused_as_nobody(mp, "permission denied: cannot connect"));
	/* open the file modes so the request reaches the SO_PEERCRED check */
	CHECK(chmod(path, 0666) == 0);
	CHECK(refused_as_nobody(mp, "permission denied: only uid 0 or root may control this mount"));
	CHECK(chmod(path, 0600) == 0 && chmod(dir, 0700) == 0);
}

/* A socket file left behind by a dead daemon: bound, never listened on. */
static void make_stale(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	CHECK(strlen(path) < sizeof(addr.sun_path));
	memcpy(addr.sun_path, path, strlen(path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	close(fd);
}

static void test_server(void)
{
	int ncalls = 0;
	struct control_handler h = { .call = fake_call, .arg = &ncalls };
	const char *mp = "/mnt/ctl-test";
	char path[PATH_MAX], err[256], *text;
	CHECK(control_socket_path(mp, geteuid(), path, sizeof(path)) == 0);
	CHECK(control_call(mp, "status", 0, NULL, &text, err, sizeof(err)) == -ENOENT);
	CHECK(strstr(err, "no veneer mount at /mnt/ctl-test (no control socket at ") != NULL);

	struct control_server *srv, *srv2;
	CHECK(control_server_start(mp, geteuid(), &h, &srv) == 0);
	struct stat st;
	CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600);
	CHECK(control_server_start(mp, geteuid(), &h, &srv2) == -EADDRINUSE);
	test_server_calls(mp, path);
	test_peercred(mp, path);
	control_server_stop(srv);
	CHECK(lstat(path, &st) < 0 && errno == ENOENT);
	CHECK(control_call(mp, "status", 0, NULL, &text, err, sizeof(err)) == -ENOENT);

	/* a stale socket is replaced */
	make_stale(path);
	CHECK(control_call(mp, "status", 0, NULL, &text, err, sizeof(err)) == -ECONNREFUSED);
	CHECK(control_server_start(mp, geteuid(), &h, &srv) == 0);
	const char *text_arg[] = { "text" };
	CHECK(control_call(mp, "status", 1, text_arg, &text, err, sizeof(err)) == 0);
	CHECK(!strcmp(text, "no layers\n"));
	free(text);

	/* stop leaves alone a file that is no longer the socket it bound */
	CHECK(unlink(path) == 0);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fclose(f);
	control_server_stop(srv);
	CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
	CHECK(control_server_start(mp, geteuid(), &h, &srv) == -EEXIST);
	CHECK(unlink(path) == 0);
	control_server_stop(NULL);
}

int main(void)
{
	snprintf(base, sizeof(base), "%s/veneer-control-test-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(base)) {
		printf("1..0 # skip cannot create a temporary directory\n");
		return 77;
	}
	test_naming();
	test_make_dir();
	test_encode_decode();
	test_recv_malformed();
	test_server();
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	CHECK(system(cmd) == 0);
	printf("1..%d\n", unit_count);
	return 0;
}
