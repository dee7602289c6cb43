/*
 * Reading the mount table, unmounting, and finding what keeps a mount
 * busy (from /proc); see mount_table.h.  Processes in other mount
 * namespaces, and other users' processes for an ordinary user, are not
 * seen.
 */
#include "cli/mount_table.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

struct mount_entry {
	int id;			/* mountinfo field 1, as fdinfo's mnt_id */
	unsigned int major, minor;	/* st_dev of objects in the mount */
	char fstype[64];
};

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] && r[3]) {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/* The visible (last) mount whose mount point is exactly PATH. */
static bool find_mount(const char *path, struct mount_entry *ret)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	char *line = NULL;
	size_t cap = 0;
	bool found = false;
	while (getline(&line, &cap, f) > 0) {
		struct mount_entry e;
		char *save = NULL, *tok = strtok_r(line, " ", &save);
		char *fields[5] = { tok };
		for (int i = 1; tok && i < 5; i++)
			fields[i] = tok = strtok_r(NULL, " ", &save);
		if (!tok)
			continue;
		unescape(fields[4]);
		if (strcmp(fields[4], path))
			continue;
		if (sscanf(fields[0], "%d", &e.id) != 1 || sscanf(fields[2], "%u:%u", &e.major, &e.minor) != 2)
			continue;
		while ((tok = strtok_r(NULL, " ", &save)) && strcmp(tok, "-"))
			;
		tok = tok ? strtok_r(NULL, " ", &save) : NULL;
		if (tok) {
			snprintf(e.fstype, sizeof(e.fstype), "%s", tok);
			*ret = e;
			found = true;	/* keep going: the last mount on a path is the visible one */
		}
	}
	free(line);
	fclose(f);
	return found;
}

bool mount_table_fstype(const char *path, char *fstype, size_t size)
{
	struct mount_entry e;
	if (!find_mount(path, &e))
		return false;
	snprintf(fstype, size, "%s", e.fstype);
	return true;
}

bool mount_table_is_dead_veneer(const char *path)
{
	char fstype[64];
	if (!mount_table_fstype(path, fstype, sizeof(fstype)) || strcmp(fstype, "fuse.veneer"))
		return false;
	/* statfs always reaches the daemon; stat may be answered from the attribute cache */
	struct statfs sfs;
	return statfs(path, &sfs) < 0 && errno == ENOTCONN;
}

/*
 * fusermount3's verdict from its message: -EBUSY, -EPERM (not the user's
 * mount, or not in its table), or -EIO after passing its text on.
 */
static int fusermount_error(const char *text)
{
	if (strstr(text, "Device or resource busy"))
		return -EBUSY;
	if (strstr(text, "not found in") || strstr(text, "Permission denied") ||
	    strstr(text, "not permitted"))
		return -EPERM;
	if (*text)
		fputs(text, stderr);
	return -EIO;
}

static int run_fusermount(const char *path, bool lazy)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid == 0) {
		if (dup2(p[1], STDERR_FILENO) < 0)
			_exit(126);
		if (lazy)
			execlp("fusermount3", "fusermount3", "-u", "-z", "--", path, (char *)NULL);
		else
			execlp("fusermount3", "fusermount3", "-u", "--", path, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char text[1024];
	size_t len = 0;
	ssize_t n;
	while ((n = read(p[0], text + len, sizeof(text) - 1 - len)) > 0 ||
	       (n < 0 && errno == EINTR))
		len += n > 0 ? (size_t)n : 0;
	text[len] = '\0';
	close(p[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		return -ENOENT;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	return fusermount_error(text);
}

int mount_table_unmount(const char *path, bool lazy)
{
	if (geteuid() != 0)
		return run_fusermount(path, lazy);
	if (umount2(path, lazy ? MNT_DETACH : 0) < 0)
		return -errno;
	return 0;
}

/* ---- holders ---- */

/* The mount id of the object FD refers to, from /proc/self/fdinfo; -1 if unknown. */
static int fd_mount_id(const char *fdinfo)
{
	FILE *f = fopen(fdinfo, "re");
	if (!f)
		return -1;
	char line[256];
	int id = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "mnt_id: %d", &id) == 1)
			break;
	fclose(f);
	return id;
}

/*
 * Whether the magic link /proc/PID/NAME (cwd, root) lies in mount ID.
 * O_PATH neither opens the object nor looks anything up in it, so this
 * never sends a request to the daemon.
 */
static bool link_in_mount(const char *proc_pid, const char *name, int id)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", proc_pid, name);
	int fd = open(p, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return false;
	snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
	bool in = fd_mount_id(p) == id;
	close(fd);
	return in;
}

static bool fds_in_mount(const char *proc_pid, int id)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/fdinfo", proc_pid);
	DIR *d = opendir(p);
	if (!d)
		return false;
	bool in = false;
	struct dirent *de;
	while (!in && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/fdinfo/%s", proc_pid, de->d_name);
		in = fd_mount_id(p) == id;
	}
	closedir(d);
	return in;
}

/* Mappings name their file's device, which the mount shares with nothing else. */
static bool maps_in_mount(const char *proc_pid, const struct mount_entry *m)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/maps", proc_pid);
	FILE *f = fopen(p, "re");
	if (!f)
		return false;
	char *line = NULL;
	size_t cap = 0;
	bool in = false;
	while (!in && getline(&line, &cap, f) > 0) {
		unsigned int major, minor;
		unsigned long ino;
		if (sscanf(line, "%*s %*s %*s %x:%x %lu", &major, &minor, &ino) == 3)
			in = ino != 0 && major == m->major && minor == m->minor;
	}
	free(line);
	fclose(f);
	return in;
}

static int add_holder(struct mount_holder **list, size_t *n, size_t *cap, pid_t pid,
		      const char *proc_pid)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct mount_holder *bigger = realloc(*list, ncap * sizeof(**list));
		if (!bigger)
			return -ENOMEM;
		*list = bigger;
		*cap = ncap;
	}
	struct mount_holder *h = &(*list)[(*n)++];
	h->pid = pid;
	snprintf(h->comm, sizeof(h->comm), "?");
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/comm", proc_pid);
	FILE *f = fopen(p, "re");
	if (f) {
		if (fgets(h->comm, sizeof(h->comm), f))
			h->comm[strcspn(h->comm, "\n")] = '\0';
		fclose(f);
	}
	return 0;
}

int mount_table_holders(const char *path, struct mount_holder **ret_list, size_t *ret_n)
{
	struct mount_entry m;
	if (!find_mount(path, &m))
		return -ENOENT;
	DIR *proc = opendir("/proc");
	if (!proc)
		return -errno;
	struct mount_holder *list = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(proc))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid == getpid())
			continue;
		char proc_pid[64];
		snprintf(proc_pid, sizeof(proc_pid), "/proc/%ld", pid);
		if (fds_in_mount(proc_pid, m.id) || link_in_mount(proc_pid, "cwd", m.id) ||
		    link_in_mount(proc_pid, "root", m.id) || maps_in_mount(proc_pid, &m))
			r = add_holder(&list, &n, &cap, (pid_t)pid, proc_pid);
	}
	closedir(proc);
	if (r < 0) {
		free(list);
		return r;
	}
	*ret_list = list;
	*ret_n = n;
	return 0;
}
