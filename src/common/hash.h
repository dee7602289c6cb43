/* FNV-1a, the one string hash of the daemon (names, paths, identities). */
#ifndef VENEER_HASH_H
#define VENEER_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FNV1A_INIT 0xcbf29ce484222325ULL

/* Continues hash H over LEN bytes of DATA. */
static inline uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static inline uint64_t fnv1a_str(const char *s)
{
	return fnv1a(FNV1A_INIT, s, strlen(s));
}

#endif
