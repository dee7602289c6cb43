/* Paths of the view: normalization, prefix tests and the --layer spec. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "filters/virtualize/vz_internal.h"

/*
 * An absolute path with single slashes and no trailing slash ("/" alone
 * for the root).  "." and ".." are refused rather than resolved: the view
 * has no symlink-free way to resolve them before the layer exists.
 */
int vz_path_normalize(const char *in, char *out, size_t size)
{
	if (in[0] != '/')
		return -EINVAL;
	size_t pos = 0;
	const char *p = in;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return -EINVAL;
		if (len > NAME_MAX)
			return -ENAMETOOLONG;
		if (pos + 1 + len + 1 > size)
			return -ENAMETOOLONG;
		out[pos++] = '/';
		memcpy(out + pos, p, len);
		pos += len;
		p = end;
	}
	if (pos == 0) {
		if (size < 2)
			return -ENAMETOOLONG;
		out[pos++] = '/';
	}
	out[pos] = '\0';
	return 0;
}

const char *vz_path_under(const char *x, const char *p, size_t plen)
{
	if (plen == 1)	/* "/" */
		return x + 1;
	if (strncmp(x, p, plen) != 0)
		return NULL;
	if (x[plen] == '\0')
		return x + plen;
	if (x[plen] == '/')
		return x + plen + 1;
	return NULL;
}

const char *vz_path_next_component(const char *x, const char *p, size_t *len)
{
	size_t xlen = strlen(x);
	const char *next;
	if (xlen == 1) {
		if (p[1] == '\0')
			return NULL;
		next = p + 1;
	} else {
		if (strncmp(x, p, xlen) != 0 || p[xlen] != '/')
			return NULL;
		next = p + xlen + 1;
	}
	*len = (size_t)(strchrnul(next, '/') - next);
	return next;
}

int vz_path_join(const char *dir, const char *name, char *out, size_t size)
{
	size_t dlen = strlen(dir);
	size_t nlen = strlen(name);
	if (dlen == 1)
		dlen = 0;
	if (dlen + 1 + nlen + 1 > size)
		return -ENAMETOOLONG;
	memcpy(out, dir, dlen);
	out[dlen] = '/';
	memcpy(out + dlen + 1, name, nlen + 1);
	return 0;
}

/*
 * The last ':' followed by '/' separates SRC from PATH, so "a:/b" is a at
 * /b, and a source whose own name contains ":/" is written with an
 * explicit ":/" (or ":/PATH") after it.
 */
/* Length of a URL scheme and its "://" at the start of s (RFC 3986), or 0. */
static size_t url_scheme_len(const char *s)
{
	size_t n = 0;
	if (!isalpha((unsigned char)s[0]))
		return 0;
	while (isalnum((unsigned char)s[n]) || s[n] == '+' || s[n] == '-' || s[n] == '.')
		n++;
	return strncmp(s + n, "://", 3) ? 0 : n + 3;
}

int vz_layer_spec_parse(const char *spec, char **ret_src, char **ret_path, char **ret_digest)
{
	static const char digest_mark[] = "#sha256:";
	const char *hash = strrchr(spec, '#');
	const char *end = hash && !strncmp(hash, digest_mark, sizeof(digest_mark) - 1) ?
			  hash : spec + strlen(spec);
	const char *sep = NULL;
	for (const char *p = spec + url_scheme_len(spec); (p = strstr(p, ":/")) && p < end; p++)
		sep = p;
	size_t srclen = (size_t)((sep ? sep : end) - spec);
	if (srclen == 0)
		return -EINVAL;
	char *src = strndup(spec, srclen);
	char *path = sep ? strndup(sep + 1, (size_t)(end - sep - 1)) : strdup("/");
	char *digest = *end ? strdup(end + 1) : NULL;
	if (!src || !path || (*end && !digest)) {
		free(src);
		free(path);
		free(digest);
		return -ENOMEM;
	}
	*ret_src = src;
	*ret_path = path;
	*ret_digest = digest;
	return 0;
}
