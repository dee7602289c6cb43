/*
 * veneer pack DIR -o IMAGE: builds a squashfs image by running mksquashfs
 * with the options that make the output reproducible, then appends the
 * image's hash tree (layer/verity.h) and prints its root.  It does not
 * compress anything itself and passes mksquashfs' progress and messages
 * through unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "layer/verity.h"

static void pack_usage(FILE *out)
{
	fprintf(out,
		"usage: veneer pack [--comp gzip|lz4|lzo|xz|zstd] [--force] [--no-tree] DIR -o IMAGE\n"
		"\n"
		"Builds a squashfs image of DIR with mksquashfs, reproducibly: the image's\n"
		"creation time is fixed (0, or SOURCE_DATE_EPOCH when set) and entries are\n"
		"sorted, so packing the same tree twice gives identical bytes.  Files keep\n"
		"their owners, modes, times and extended attributes.\n"
		"\n"
		"Behind the squashfs data it appends a hash tree in dm-verity's format and a\n"
		"footer, and prints the tree's root as its last line, 'digest: sha256:<hex>':\n"
		"give it to 'veneer attach --digest' to pin the image.\n"
		"\n"
		"options:\n"
		"  -o, --output IMAGE    the image to write (required)\n"
		"  -c, --comp NAME       compressor (default zstd)\n"
		"  -f, --force           replace IMAGE if it exists (default: refuse)\n"
		"      --no-tree         no hash tree: a plain squashfs image, never verified\n"
		"  -h, --help            this text\n");
}

/* mksquashfs lives in sbin, which is often not on a normal user's PATH. */
static bool find_mksquashfs(char *out, size_t outlen)
{
	const char *path = getenv("PATH");
	char dirs[8192];
	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin", path && path[0] ? path : "/usr/bin:/bin");
	for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		int n = snprintf(out, outlen, "%s/mksquashfs", d);
		if (n > 0 && (size_t)n < outlen && access(out, X_OK) == 0)
			return true;
	}
	return false;
}

static bool comp_known(const char *c)
{
	static const char *const comps[] = { "gzip", "lz4", "lzo", "xz", "zstd" };
	for (size_t i = 0; i < sizeof(comps) / sizeof(comps[0]); i++)
		if (!strcmp(c, comps[i]))
			return true;
	return false;
}

static int run(char *const argv[])
{
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "veneer: pack: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		execv(argv[0], argv);
		fprintf(stderr, "veneer: pack: cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "veneer: pack: waitpid: %s\n", strerror(errno));
			return 1;
		}
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "veneer: pack: mksquashfs killed by signal %d\n", WTERMSIG(status));
		return 128 + WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}

static int check_paths(const char *dir, const char *image, bool force)
{
	struct stat st;
	if (stat(dir, &st) < 0) {
		fprintf(stderr, "veneer: pack: cannot use '%s': %s\n", dir, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "veneer: pack: '%s' is not a directory\n", dir);
		return 1;
	}
	if (!force && lstat(image, &st) == 0) {
		fprintf(stderr, "veneer: pack: '%s' exists (use --force to replace it)\n", image);
		return 1;
	}
	return 0;
}

/* Appends the hash tree to the image mksquashfs wrote and prints its root. */
static int append_tree(const char *image)
{
	char err[256], digest[80];
	uint8_t root[VERITY_DIGEST];
	struct stat st;
	int fd = open(image, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "veneer: pack: cannot open '%s': %s\n", image, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	/* mksquashfs pads to 4 KiB; the tree covers whole blocks */
	int r = st.st_size > 0 && st.st_size % VERITY_BLOCK == 0 ?
		verity_build(fd, (uint64_t)st.st_size, root, err, sizeof(err)) : -EINVAL;
	if (r == -EINVAL && st.st_size % VERITY_BLOCK)
		snprintf(err, sizeof(err), "its size %lld is not a multiple of 4096 "
			 "(mksquashfs -nopad?)", (long long)st.st_size);
	if (r == 0 && fsync(fd) < 0) {
		r = -errno;
		snprintf(err, sizeof(err), "%s", strerror(errno));
	}
	close(fd);
	if (r < 0) {
		fprintf(stderr, "veneer: pack: '%s': %s\n", image, err);
		return 1;
	}
	verity_digest_format(root, digest, sizeof(digest));
	printf("digest: %s\n", digest);
	return 0;
}

int cmd_pack(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "comp", required_argument, NULL, 'c' },
		{ "force", no_argument, NULL, 'f' },
		{ "no-tree", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *image = NULL, *comp = "zstd";
	bool force = false, tree = true;
	int c;
	while ((c = getopt_long(argc, argv, "o:c:fh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			image = optarg;
			break;
		case 'c':
			comp = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'T':
			tree = false;
			break;
		case 'h':
			pack_usage(stdout);
			return 0;
		default:
			fprintf(stderr, "veneer: pack: see 'veneer pack --help'\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "veneer: pack takes exactly one DIR (see 'veneer pack --help')\n");
		return 2;
	}
	if (!image) {
		fprintf(stderr, "veneer: pack: missing -o IMAGE\n");
		return 2;
	}
	if (!comp_known(comp)) {
		fprintf(stderr, "veneer: pack: unknown compressor '%s' (gzip, lz4, lzo, xz or zstd)\n",
			comp);
		return 2;
	}
	const char *dir = argv[optind];
	if (check_paths(dir, image, force))
		return 1;
	char prog[PATH_MAX];
	if (!find_mksquashfs(prog, sizeof(prog))) {
		fprintf(stderr, "veneer: pack: mksquashfs not found "
				"(install it with: apt-get install squashfs-tools)\n");
		return 1;
	}
	/*
	 * -reproducible is mksquashfs 4.5's default; say it anyway for older
	 * ones.  mksquashfs refuses -mkfs-time when SOURCE_DATE_EPOCH is set
	 * and then uses that time itself.
	 */
	char *args[16];
	int n = 0;
	args[n++] = prog;
	args[n++] = (char *)dir;
	args[n++] = (char *)image;
	args[n++] = (char *)"-noappend";
	args[n++] = (char *)"-reproducible";
	args[n++] = (char *)"-comp";
	args[n++] = (char *)comp;
	if (!getenv("SOURCE_DATE_EPOCH")) {
		args[n++] = (char *)"-mkfs-time";
		args[n++] = (char *)"0";
	}
	args[n] = NULL;
	int r = run(args);
	if (r != 0 || !tree)
		return r;
	fflush(stdout);		/* mksquashfs' report first, the digest last */
	return append_tree(image);
}
