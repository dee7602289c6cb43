/* Text built up in a growing buffer; see textbuf.h. */
#include "common/textbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int textbuf_vprintf(char **buf, size_t *len, size_t *cap, const char *fmt, va_list ap)
{
	for (;;) {
		va_list again;
		va_copy(again, ap);
		size_t room = *buf ? *cap - *len : 0;
		int n = vsnprintf(*buf ? *buf + *len : NULL, room, fmt, again);
		va_end(again);
		if (n < 0)
			return -EINVAL;
		if ((size_t)n < room) {
			*len += (size_t)n;
			return 0;
		}
		size_t ncap = (*cap ? *cap * 2 : 4096) + (size_t)n;
		char *b = realloc(*buf, ncap);
		if (!b)
			return -ENOMEM;
		*buf = b;
		*cap = ncap;
	}
}

int textbuf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = textbuf_vprintf(buf, len, cap, fmt, ap);
	va_end(ap);
	return r;
}

int textbuf_json_string(char **buf, size_t *len, size_t *cap, const char *s)
{
	int r = textbuf_printf(buf, len, cap, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p && r == 0; p++) {
		if (*p == '"' || *p == '\\')
			r = textbuf_printf(buf, len, cap, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			r = textbuf_printf(buf, len, cap, "\\u%04x", *p);
		else
			r = textbuf_printf(buf, len, cap, "%c", *p);
	}
	return r ? r : textbuf_printf(buf, len, cap, "\"");
}

int textbuf_prom_label(char **buf, size_t *len, size_t *cap, const char *s)
{
	int r = textbuf_printf(buf, len, cap, "\"");
	for (const char *p = s; *p && r == 0; p++) {
		if (*p == '"' || *p == '\\')
			r = textbuf_printf(buf, len, cap, "\\%c", *p);
		else if (*p == '\n')
			r = textbuf_printf(buf, len, cap, "\\n");
		else
			r = textbuf_printf(buf, len, cap, "%c", *p);
	}
	return r ? r : textbuf_printf(buf, len, cap, "\"");
}

int textbuf_prom_family(char **buf, size_t *len, size_t *cap, const char *name,
			const char *type, const char *help)
{
	return textbuf_printf(buf, len, cap, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
			      type);
}
