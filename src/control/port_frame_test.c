/*
 * Unit test of the port message framing: every byte value round-trips,
 * the bound holds on both sides, and what is not a frame is refused.
 */
#include "control/port_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <veneer/filter.h>

#include "../tests/unit.h"

static int roundtrip(const void *msg, size_t len)
{
	char *field;
	void *back;
	size_t back_len;
	if (port_frame_encode(msg, len, &field) < 0)
		return -1;
	int ok = strlen(field) == 2 * len && port_frame_decode(field, &back, &back_len) == 0 &&
		 back_len == len && memcmp(back, msg, len) == 0 && ((char *)back)[len] == '\0';
	if (ok)
		free(back);
	free(field);
	return ok ? 0 : -1;
}

static int decode(const char *field)
{
	void *msg;
	size_t len;
	int r = port_frame_decode(field, &msg, &len);
	if (r == 0)
		free(msg);
	return r;
}

int main(void)
{
	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	CHECK(roundtrip(all, sizeof(all)) == 0);	/* NULs and high bytes too */
	CHECK(roundtrip("", 0) == 0);

	char *big = calloc(1, VN_PORT_MAX_MESSAGE + 1);
	CHECK(big != NULL);
	memset(big, 'x', VN_PORT_MAX_MESSAGE);
	CHECK(roundtrip(big, VN_PORT_MAX_MESSAGE) == 0);
	char *field = NULL;
	CHECK(port_frame_encode(big, VN_PORT_MAX_MESSAGE + 1, &field) == -EMSGSIZE);
	CHECK(field == NULL);

	/* a peer's frame one byte over the bound */
	char *over = malloc(2 * (VN_PORT_MAX_MESSAGE + 1) + 1);
	CHECK(over != NULL);
	memset(over, 'a', 2 * (VN_PORT_MAX_MESSAGE + 1));
	over[2 * (VN_PORT_MAX_MESSAGE + 1)] = '\0';
	CHECK(decode(over) == -EMSGSIZE);
	free(over);
	free(big);

	CHECK(decode("abc") == -EINVAL);	/* odd length */
	CHECK(decode("zz") == -EINVAL);		/* not hex */
	CHECK(decode("AB") == -EINVAL);		/* uppercase is not what encode makes */
	CHECK(decode("6869") == 0);
	void *msg;
	size_t len;
	CHECK(port_frame_decode("6869", &msg, &len) == 0 && len == 2 && !memcmp(msg, "hi", 3));
	free(msg);
	printf("1..%d\n", unit_count);
	return 0;
}
