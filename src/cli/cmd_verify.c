/*
 * veneer verify IMAGE [--digest sha256:<hex>]: checks a whole image
 * against its hash tree offline, through the same verity reader the
 * daemon reads images with, and names every block that does not match.
 * It checks integrity only: whether the squashfs inside is well formed is
 * what attach and ls find out.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "layer/image_reader.h"

static void verify_usage(FILE *out)
{
	fprintf(out,
		"usage: veneer verify [--digest sha256:<hex>] IMAGE\n"
		"\n"
		"Checks every block of IMAGE against the hash tree 'veneer pack' appended,\n"
		"and the tree against its root: the one in the image's footer, or the\n"
		"digest given.  Each block that does not match is named with its offset.\n"
		"Exit status 0 when the whole image matches, 1 otherwise.\n"
		"\n"
		"options:\n"
		"  -d, --digest sha256:<hex>  the root the tree must have (as pack printed it)\n"
		"  -h, --help                 this text\n");
}

/*
 * Reads every data block on its own, so that each one that does not match
 * is named once (the reader logs its offset); returns how many, or -errno.
 */
static long long check_blocks(struct image_reader *r)
{
	uint64_t blocks = r->size / VERITY_BLOCK;
	long long bad = 0;
	uint8_t buf[VERITY_BLOCK];
	for (uint64_t b = 0; b < blocks; b++) {
		int rc = image_reader_read_exact(r, buf, sizeof(buf), b * VERITY_BLOCK);
		if (rc == -EIO)
			bad++;
		else if (rc < 0)
			return rc;
	}
	return bad;
}

static int verify(const char *image, const uint8_t *pin)
{
	struct image_reader *r;
	enum image_integrity integ;
	uint8_t root[VERITY_DIGEST];
	char err[512], digest[80];
	struct stat st;
	int fd = open(image, O_RDONLY | O_CLOEXEC);
	const char *why = fd < 0 || fstat(fd, &st) < 0 ? strerror(errno) :
			  !S_ISREG(st.st_mode) ? "not a regular file" : NULL;
	if (why) {
		fprintf(stderr, "veneer: verify: cannot use '%s': %s\n", image, why);
		if (fd >= 0)
			close(fd);
		return 1;
	}
	if (image_reader_open_file(fd, (uint64_t)st.st_size, pin, image, &r, &integ, root, err,
				   sizeof(err)) < 0) {
		fprintf(stderr, "veneer: verify: '%s': %s\n", image, err);
		close(fd);
		return 1;
	}
	if (integ == IMAGE_UNVERIFIED) {
		fprintf(stderr, "veneer: verify: '%s': no hash tree (packed with --no-tree, or "
			"not by veneer pack)\n", image);
		image_reader_free(r);
		close(fd);
		return 1;
	}
	long long bad = check_blocks(r);
	uint64_t blocks = r->size / VERITY_BLOCK;
	image_reader_free(r);
	close(fd);
	verity_digest_format(root, digest, sizeof(digest));
	if (bad < 0) {
		fprintf(stderr, "veneer: verify: cannot read '%s': %s\n", image, strerror((int)-bad));
		return 1;
	}
	if (bad > 0) {
		fprintf(stderr, "veneer: verify: '%s': %lld of %llu data blocks do not match "
			"the hash tree (root %s)\n", image, bad, (unsigned long long)blocks, digest);
		return 1;
	}
	printf("%s: ok, %llu data block%s match the hash tree\ndigest: %s\n", image,
	       (unsigned long long)blocks, blocks == 1 ? "" : "s", digest);
	return 0;
}

int cmd_verify(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "digest", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint8_t pin[VERITY_DIGEST];
	bool pinned = false;
	int c;
	while ((c = getopt_long(argc, argv, "d:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!verity_digest_parse(optarg, pin)) {
				fprintf(stderr, "veneer: verify: bad digest '%s' (want sha256: and 64 "
					"hex digits)\n", optarg);
				return 2;
			}
			pinned = true;
			break;
		case 'h':
			verify_usage(stdout);
			return 0;
		default:
			fprintf(stderr, "veneer: verify: see 'veneer verify --help'\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "veneer: verify takes exactly one IMAGE (see 'veneer verify --help')\n");
		return 2;
	}
	return verify(argv[optind], pinned ? pin : NULL);
}
