/* Reading the mount table and unmounting; see mount_table.h. */
#include "cli/mount_table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

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

bool mount_table_fstype(const char *path, char *fstype, size_t size)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	char *line = NULL;
	size_t cap = 0;
	bool found = false;
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL, *mp = NULL, *tok = strtok_r(line, " ", &save);
		for (int i = 0; tok && i < 4; i++)
			tok = strtok_r(NULL, " ", &save);
		mp = tok;
		if (!mp)
			continue;
		unescape(mp);
		if (strcmp(mp, path))
			continue;
		while ((tok = strtok_r(NULL, " ", &save)) && strcmp(tok, "-"))
			;
		tok = tok ? strtok_r(NULL, " ", &save) : NULL;
		if (tok) {
			snprintf(fstype, size, "%s", tok);
			found = true;	/* keep going: the last mount on a path is the visible one */
		}
	}
	free(line);
	fclose(f);
	return found;
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

static int run_fusermount(const char *path, bool lazy)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (lazy)
			execlp("fusermount3", "fusermount3", "-u", "-z", "--", path, (char *)NULL);
		else
			execlp("fusermount3", "fusermount3", "-u", "--", path, (char *)NULL);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		return -ENOENT;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EBUSY;
}

int mount_table_unmount(const char *path, bool lazy)
{
	if (geteuid() != 0)
		return run_fusermount(path, lazy);
	if (umount2(path, lazy ? MNT_DETACH : 0) < 0)
		return -errno;
	return 0;
}
