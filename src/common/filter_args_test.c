/* Unit test: the built-in filters' argument lines (filter_args.h). */
#include "common/filter_args.h"

#include <stdio.h>
#include <string.h>

#include "../tests/unit.h"

struct seen {
	char text[512];
	int stop_at;	/* the line that answers 7; 0: none */
	int n;
};

static int collect(const char *key, const char *value, void *arg)
{
	struct seen *s = arg;
	size_t len = strlen(s->text);
	snprintf(s->text + len, sizeof(s->text) - len, "[%s|%s]", key, value ? value : "(none)");
	return ++s->n == s->stop_at ? 7 : 0;
}

static const char *each(const char *args, int stop_at, int *ret)
{
	static struct seen s;
	memset(&s, 0, sizeof(s));
	s.stop_at = stop_at;
	*ret = filter_args_each(args, collect, &s);
	return s.text;
}

int main(void)
{
	int r;
	CHECK(!strcmp(each(NULL, 0, &r), "") && r == 0);
	CHECK(!strcmp(each("", 0, &r), "") && r == 0);
	CHECK(!strcmp(each("file=/a b,c:d=e", 0, &r), "[file|/a b,c:d=e]") && r == 0);
	CHECK(!strcmp(each("layer=/x:/\nlayer=/y:/p#sha256:00\n", 0, &r),
		      "[layer|/x:/][layer|/y:/p#sha256:00]") && r == 0);
	CHECK(!strcmp(each("flag\nk=", 0, &r), "[flag|(none)][k|]") && r == 0);
	CHECK(!strcmp(each("a=1\nb=2\nc=3", 2, &r), "[a|1][b|2]") && r == 7);
	printf("1..%d\n", unit_count);
	return 0;
}
