/*
 * Acting as the caller when creating objects: per-thread fsuid/fsgid (the
 * raw syscalls are per thread; glibc does not broadcast setfsuid), so new
 * files belong to the calling process.  Permission checks stay with the
 * kernel (default_permissions is on whenever other users reach the mount),
 * so the capabilities that setfsuid drops for DAC checks are raised again;
 * CAP_FSETID stays dropped, so setgid bits are cleared as they would be for
 * the caller: with its supplementary groups when the frontend read them
 * (raw setgroups, per thread, only for creations that ask for setgid).
 */
#include <linux/capability.h>
#include <sched.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lower/lower_internal.h"

static __thread bool switched;
static __thread bool groups_set;

static void raise_dac_caps(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	if (syscall(SYS_capget, &hdr, data) < 0)
		return;
	const unsigned int keep[] = { CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER };
	for (unsigned int i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		data[keep[i] / 32].effective |= data[keep[i] / 32].permitted & (1u << (keep[i] % 32));
	(void)syscall(SYS_capset, &hdr, data);
}

/*
 * The umask is per process; a worker thread that unshares its filesystem
 * context (CLONE_FS) gets its own, so each creation can carry its caller's.
 */
static __thread bool fs_unshared;
static __thread bool umask_set;

static void enter_umask(mode_t mask)
{
	if (!fs_unshared) {
		if (unshare(CLONE_FS) < 0)
			return;
		fs_unshared = true;
	}
	umask(mask);
	umask_set = true;
}

void creds_enter(const struct vn_caller *caller)
{
	if (lower_ctx.apply_umask)
		enter_umask(caller->umask);
	if (!lower_ctx.act_as_caller || (caller->uid == 0 && caller->gid == 0))
		return;
	if (caller->ngroups >= 0)
		(void)syscall(SYS_setgroups, caller->ngroups, caller->groups);
	(void)syscall(SYS_setfsgid, caller->gid);
	(void)syscall(SYS_setfsuid, caller->uid);
	groups_set = caller->ngroups >= 0;
	raise_dac_caps();
	switched = true;
}

void creds_leave(void)
{
	if (umask_set) {
		umask(0);
		umask_set = false;
	}
	if (!switched)
		return;
	/* fsuid back to 0 restores the effective filesystem capabilities */
	(void)syscall(SYS_setfsuid, 0);
	(void)syscall(SYS_setfsgid, 0);
	if (groups_set)
		(void)syscall(SYS_setgroups, 0, NULL);
	groups_set = false;
	switched = false;
}

/* Whether the caller's thread has CAP_FSETID (from /proc; false when it cannot tell). */
static bool caller_has_fsetid(const struct vn_caller *caller)
{
	if (caller->pid <= 0)
		return false;
	char path[48];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)caller->pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	char line[256];
	unsigned long long eff = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	return eff & (1ULL << CAP_FSETID);
}

int creds_kill_suidgid(int fd, const struct vn_caller *unless_capable)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	mode_t mode = st.st_mode & 07777;
	mode_t kill = S_ISUID | ((mode & S_IXGRP) ? S_ISGID : 0);
	if (!S_ISREG(st.st_mode) || !(mode & kill) ||
	    (unless_capable && caller_has_fsetid(unless_capable)))
		return 0;
	if (fchmod(fd, mode & ~kill) == 0)
		return 0;
	if (errno != EBADF)	/* an O_PATH descriptor: by its /proc path */
		return -errno;
	char p[PROC_FD_PATH_MAX];
	return chmod(proc_fd_path(p, fd), mode & ~kill) < 0 ? -errno : 0;
}
