/*
 * veneer verify [--digest sha256:<hex>] [--cacert FILE] IMAGE|URL: checks
 * a whole image against its hash tree, through the same verity reader the
 * daemon reads images with, and names every block that does not match.
 * An http(s) URL is read through the daemon's HTTP reader, every chunk
 * fetched from the server: its chunk cache is a temporary directory of
 * this command's own, removed at the end, so nothing cached stands in for
 * the server's bytes.
 * It checks integrity only: whether the squashfs inside is well formed is
 * what attach and ls find out.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "layer/http_reader.h"
#include "layer/image_reader.h"

static void verify_usage(FILE *out)
{
	fprintf(out,
		"usage: veneer verify [--digest sha256:<hex>] [--cacert FILE] IMAGE|URL\n"
		"\n"
		"Checks every block of IMAGE against the hash tree 'veneer pack' appended,\n"
		"and the tree against its root: the one in the image's footer, or the\n"
		"digest given.  Each block that does not match is named with its offset.\n"
		"An http:// or https:// URL is fetched whole, in ranges, bypassing the\n"
		"chunk cache.\n"
		"Exit status 0 when the whole image matches, 1 otherwise.\n"
		"\n"
		"options:\n"
		"  -d, --digest sha256:<hex>  the root the tree must have (as pack printed it)\n"
		"      --cacert FILE          CA certificates (PEM) for https instead of the\n"
		"                             system's\n"
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

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	remove(path);
	return 0;
}

/*
 * Opens the reader of a local image (*fd is the file, closed by the
 * caller) or of a URL (*tmp the temporary cache to remove).  0, or 1
 * with the reason printed.
 */
static int open_image(const char *image, const char *shown, const uint8_t *pin,
		      const char *cacert, struct image_reader **r, enum image_integrity *integ,
		      uint8_t *root, int *fd, char *tmp)
{
	char err[512];
	struct stat st;
	int rc;
	if (http_is_url(image)) {
		struct image_reader *remote;
		/* small: the blocks are read in order, each chunk read soon after its fetch */
		struct remote_options o = { .cacert = cacert, .cache_dir = tmp,
					    .cache_size = 64ull << 20 };
		if (!mkdtemp(tmp)) {
			fprintf(stderr, "veneer: verify: cannot make a directory '%s': %s\n", tmp,
				strerror(errno));
			tmp[0] = '\0';
			return 1;
		}
		rc = http_reader_open(image, &o, pin, &remote, err, sizeof(err));
		if (rc == 0)
			rc = image_reader_open_verified(remote, pin, shown, r, integ, root, err,
							sizeof(err));
	} else {
		*fd = open(image, O_RDONLY | O_CLOEXEC);
		const char *why = *fd < 0 || fstat(*fd, &st) < 0 ? strerror(errno) :
				  !S_ISREG(st.st_mode) ? "not a regular file" : NULL;
		if (why) {
			fprintf(stderr, "veneer: verify: cannot use '%s': %s\n", image, why);
			return 1;
		}
		rc = image_reader_open_file(*fd, (uint64_t)st.st_size, pin, image, r, integ, root,
					    err, sizeof(err));
	}
	if (rc < 0) {
		fprintf(stderr, "veneer: verify: '%s': %s\n", shown, err);
		return 1;
	}
	return 0;
}

/* The temporary chunk cache of a URL: under $TMPDIR when it is set, as
 * mkdtemp(3)'s callers do, else /tmp.  0, or 1 with the reason printed. */
static int temp_template(char *out, size_t len)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	int n = snprintf(out, len, "%s/veneer-verify.XXXXXX", dir);
	if (n < 0 || (size_t)n >= len) {
		fprintf(stderr, "veneer: verify: TMPDIR is too long: %s\n", dir);
		out[0] = '\0';
		return 1;
	}
	return 0;
}

static int verify(const char *image, const uint8_t *pin, const char *cacert)
{
	struct image_reader *r = NULL;
	enum image_integrity integ;
	uint8_t root[VERITY_DIGEST];
	char digest[80], shown[PATH_MAX], tmp[PATH_MAX] = "";
	int fd = -1, ret = 1;
	long long bad = 0;
	uint64_t blocks = 0;
	if (http_is_url(image))
		http_url_redact(image, shown, sizeof(shown));
	else
		snprintf(shown, sizeof(shown), "%s", image);
	if (http_is_url(image) && temp_template(tmp, sizeof(tmp)))
		goto out;
	if (open_image(image, shown, pin, cacert, &r, &integ, root, &fd, tmp))
		goto out;
	if (integ == IMAGE_UNVERIFIED) {
		fprintf(stderr, "veneer: verify: '%s': no hash tree (packed with --no-tree, or "
			"not by veneer pack)\n", shown);
		goto out;
	}
	bad = check_blocks(r);
	blocks = r->size / VERITY_BLOCK;
	verity_digest_format(root, digest, sizeof(digest));
	if (bad < 0)
		fprintf(stderr, "veneer: verify: cannot read '%s': %s\n", shown, strerror((int)-bad));
	else if (bad > 0)
		fprintf(stderr, "veneer: verify: '%s': %lld of %llu data blocks do not match "
			"the hash tree (root %s)\n", shown, bad, (unsigned long long)blocks, digest);
	else
		ret = 0;
	if (ret == 0)
		printf("%s: ok, %llu data block%s match the hash tree\ndigest: %s\n", shown,
		       (unsigned long long)blocks, blocks == 1 ? "" : "s", digest);
out:
	if (r)
		image_reader_free(r);
	if (fd >= 0)
		close(fd);
	if (http_is_url(image) && tmp[0])
		nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}

int cmd_verify(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "digest", required_argument, NULL, 'd' },
		{ "cacert", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint8_t pin[VERITY_DIGEST];
	bool pinned = false;
	const char *cacert = NULL;
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
		case 'C':
			cacert = optarg;
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
		fprintf(stderr, "veneer: verify takes exactly one IMAGE or URL (see 'veneer verify --help')\n");
		return 2;
	}
	return verify(argv[optind], pinned ? pin : NULL, cacert);
}
