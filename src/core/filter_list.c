/*
 * The report behind `veneer filter list`, and the filters' part of
 * `veneer status --prometheus`.  It reads the stack and each filter's
 * table; it changes nothing.
 */
#include "core/filter_list.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/textbuf.h"
#include "core/filter_manager.h"
#include "core/filter_ports.h"

struct text {
	char *buf;
	size_t len, cap;
	int err;
};

static void put(struct text *t, const char *s, bool json)
{
	if (t->err)
		return;
	t->err = json ? textbuf_json_string(&t->buf, &t->len, &t->cap, s)
		      : textbuf_printf(&t->buf, &t->len, &t->cap, "%s", s);
}

/* A list of names: a JSON array, or comma-separated text ("-" for none). */
static void put_names(struct text *t, const char *const *names, unsigned int n, bool json)
{
	put(t, json ? "[" : (n ? "" : "-"), false);
	for (unsigned int i = 0; i < n; i++) {
		if (i)
			put(t, ",", false);
		put(t, names[i], json);
	}
	if (json)
		put(t, "]", false);
}

static void put_flags(struct text *t, struct vn_filter *f, bool json)
{
	const char *names[3];
	unsigned int n = 0;
	if (f->ops->flags & VN_FILTER_OPENS_SKIPPABLE)
		names[n++] = "opens-skippable";
	if (f->ops->flags & VN_FILTER_DATA_SKIPPABLE)
		names[n++] = "data-skippable";
	if (f->ops->flags & VN_FILTER_PORTS_ANSWER_ONLY)
		names[n++] = "ports-answer-only";
	put_names(t, names, n, json);
}

static void put_operations(struct text *t, struct vn_filter *f, bool json)
{
	const char *names[VN_OP_COUNT];
	unsigned int n = 0;
	for (int op = VN_OP_NONE + 1; op < VN_OP_COUNT; op++)
		if (f->pre[op] || f->post[op])
			names[n++] = vn_opcode_name(op);
	if (!json && n == VN_OP_COUNT - 1)
		put(t, "all", false);
	else
		put_names(t, names, n, json);
}

/* The ports, or with CLIENTS the ports' clients as PORT:PID. */
static void put_ports(struct text *t, struct vn_filter *f, bool clients, bool json)
{
	char list[VN_MAX_PORTS * (VN_PORT_NAME_MAX + 12)];
	fm_port_names(f, clients, list, sizeof(list));
	const char *names[VN_MAX_PORTS];
	unsigned int n = 0;
	char *save;
	for (char *p = strtok_r(list, ",", &save); p && strcmp(p, "-"); p = strtok_r(NULL, ",", &save))
		names[n++] = p;
	put_names(t, names, n, json);
}

/* Where a filter came from and when it was loaded (list and metrics alike). */
static const char *filter_loaded(const struct vn_filter *f)
{
	return f->live ? "live" : "mount";
}

static const char *filter_origin(const struct vn_filter *f)
{
	return f->origin ? f->origin : "built-in";
}

static void put_filter(struct text *t, struct vn_filter *f, bool json)
{
	if (json) {
		put(t, "{\"name\":", false);
		put(t, f->ops->name, true);
		if (!t->err)
			t->err = textbuf_printf(&t->buf, &t->len, &t->cap, ",\"altitude\":%d,\"flags\":",
						f->ops->altitude);
	} else {
		if (!t->err)
			t->err = textbuf_printf(&t->buf, &t->len, &t->cap, "%s altitude=%d flags=",
						f->ops->name, f->ops->altitude);
	}
	put_flags(t, f, json);
	put(t, json ? ",\"operations\":" : " ops=", false);
	put_operations(t, f, json);
	put(t, json ? ",\"ports\":" : " ports=", false);
	put_ports(t, f, false, json);
	put(t, json ? ",\"clients\":" : " clients=", false);
	put_ports(t, f, true, json);
	put(t, json ? ",\"state\":\"attached\",\"loaded\":" : " state=attached loaded=", false);
	put(t, filter_loaded(f), json);
	put(t, json ? ",\"origin\":" : " origin=", false);
	put(t, filter_origin(f), json);
	put(t, json ? "}" : "\n", false);
}

int fm_list(bool json, char **ret_text)
{
	struct vn_filter *filters[VN_MAX_FILTERS];
	unsigned int n = fm_filters(filters);
	struct text t = { 0 };
	put(&t, json ? "{\"filters\":[" : "", false);
	for (unsigned int i = 0; i < n; i++) {
		if (json && i)
			put(&t, ",", false);
		put_filter(&t, filters[i], json);
	}
	put(&t, json ? "]}\n" : "", false);
	if (t.err) {
		free(t.buf);
		return t.err;
	}
	*ret_text = t.buf ? t.buf : strdup("");
	return *ret_text ? 0 : -ENOMEM;
}

/* NAME="VALUE" (VALUE escaped for the Prometheus text format). */
static void put_label(struct text *t, const char *name, const char *value)
{
	if (!t->err)
		t->err = textbuf_printf(&t->buf, &t->len, &t->cap, "%s=", name) ?:
			 textbuf_prom_label(&t->buf, &t->len, &t->cap, value);
}

int fm_metrics(char **ret_text)
{
	struct vn_filter *filters[VN_MAX_FILTERS];
	unsigned int n = fm_filters(filters);
	struct text t = { 0 };
	t.err = textbuf_prom_family(&t.buf, &t.len, &t.cap, "veneer_filters", "gauge",
				    "Filters in the mount's stack.") ?:
		textbuf_printf(&t.buf, &t.len, &t.cap, "veneer_filters %u\n", n) ?:
		textbuf_prom_family(&t.buf, &t.len, &t.cap, "veneer_filter_info", "gauge",
				    "A filter of the stack: its altitude, state, when it was "
				    "loaded and where from.");
	for (unsigned int i = 0; i < n; i++) {
		char altitude[16];
		snprintf(altitude, sizeof(altitude), "%d", filters[i]->ops->altitude);
		put(&t, "veneer_filter_info{", false);
		put_label(&t, "name", filters[i]->ops->name);
		put_label(&t, ",altitude", altitude);
		put_label(&t, ",state", "attached");
		put_label(&t, ",loaded", filter_loaded(filters[i]));
		put_label(&t, ",origin", filter_origin(filters[i]));
		put(&t, "} 1\n", false);
	}
	if (t.err) {
		free(t.buf);
		return t.err;
	}
	*ret_text = t.buf;
	return 0;
}
