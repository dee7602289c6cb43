/*
 * Text built up in a malloc'd buffer: *buf holds *len bytes (NUL-terminated
 * when not empty) of *cap.  Used for reports, records, JSON and the
 * Prometheus text format.
 */
#ifndef VENEER_TEXTBUF_H
#define VENEER_TEXTBUF_H

#include <stdarg.h>
#include <stddef.h>

/* Appends; 0, or -ENOMEM / -EINVAL (the buffer keeps what it had). */
int textbuf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int textbuf_vprintf(char **buf, size_t *len, size_t *cap, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
/* Appends S as a JSON string, quotes included. */
int textbuf_json_string(char **buf, size_t *len, size_t *cap, const char *s);
/* Appends S as a Prometheus label value, quotes included. */
int textbuf_prom_label(char **buf, size_t *len, size_t *cap, const char *s);
/* Appends the # HELP and # TYPE lines that open a Prometheus metric family. */
int textbuf_prom_family(char **buf, size_t *len, size_t *cap, const char *name,
			const char *type, const char *help);

#endif
