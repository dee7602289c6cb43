/*
 * Filters' communication ports: names a filter opened with vn_port_open(),
 * the delivery of one client message to one of them, and the other way:
 * questions a filter asks a port's connected client (vn_port_ask), handed
 * to that client's stream and answered, timed out or failed.  The control
 * socket, its peer check and the framing are the caller's (the daemon's
 * control verbs); this knows only filters and ports.
 */
#ifndef VENEER_FILTER_PORTS_H
#define VENEER_FILTER_PORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/filter_manager.h"

/*
 * Delivers MSG (LEN bytes) to the port PORT of filter FILTER ("" PORT: the
 * first port it opened) and returns its reply (*ret_reply malloc'd or NULL,
 * *ret_len).  -ENOENT (no such filter or port), -EMSGSIZE (message or reply
 * over VN_PORT_MAX_MESSAGE) or what the filter returned, with a one-line
 * message in err.  On the control thread.
 */
int fm_port_send(const char *filter, const char *port, const void *msg, size_t len,
		 void **ret_reply, size_t *ret_len, char *err, size_t errlen);

/*
 * Calls FOUND(F, PORT, ARG) with FILTER's stream port PORT ("": the first
 * port) under the ports' lock, so that what FOUND registers is there
 * before an unload closes the port (fm_ports_close); FOUND must not block
 * or call into the ports.  Returns what FOUND returned, or -ENOENT /
 * -EOPNOTSUPP (not a stream port) with a message in err.
 */
typedef int fm_stream_found_fn(struct vn_filter *f, struct fm_port *port, void *arg);
int fm_port_stream_find(const char *filter, const char *port, fm_stream_found_fn *found,
			void *arg, char *err, size_t errlen);

/*
 * Around a call of F's port callback on this thread: vn_port_error() fills
 * the reason from BEGIN to END, and END words it into err when R < 0.
 */
void fm_port_reason_begin(struct vn_filter *f);
void fm_port_reason_end(const struct vn_filter *f, const char *filter, const char *port, int r,
			char *err, size_t errlen);

/*
 * The names of F's ports, comma-separated ("-" for none), into buf; with
 * CLIENTS only those with a client, each as NAME:PID.
 */
void fm_port_names(struct vn_filter *f, bool clients, char *buf, size_t size);

/*
 * Connects process PID as the client of FILTER's port PORT ("" : the first
 * one): 0 and *ret_client, or -ENOENT / -EBUSY (the port has a client),
 * with a message in err.
 */
int fm_port_listen(const char *filter, const char *port, pid_t pid,
		   struct port_client **ret_client, char *err, size_t errlen);

/* A question handed to the client: its number and bytes (malloc'd, the caller's). */
struct fm_question {
	uint64_t id;
	void *msg;
	size_t len;
};

/*
 * The questions not yet handed to C, waiting at most TIMEOUT_MS for one:
 * *ret (malloc'd array, *ret_n entries; NULL when none, also on error).  Questions past
 * their deadline fail here (DONE with -ETIMEDOUT, on this thread).
 * -ENOTCONN once the port is gone (its filter unloaded).
 */
int fm_port_client_next(struct port_client *c, int timeout_ms, struct fm_question **ret,
			size_t *ret_n);

/* Disconnects C: its questions fail with -ENOTCONN; frees C. */
void fm_port_client_close(struct port_client *c);

/*
 * The client's answer to question ID of FILTER's port PORT: DONE runs on
 * this thread.  -ENOENT (no such question waiting: answered, timed out or
 * never asked), -ENOTCONN (the port has no client), with a message.
 */
int fm_port_answer(const char *filter, const char *port, uint64_t id, const void *reply,
		   size_t len, char *err, size_t errlen);

/* Fails every question F's ports wait on (-ENOTCONN): F is being unloaded. */
void fm_ports_cancel(struct vn_filter *f);

/*
 * Fails the questions asked about OP (-EINTR): the application that started
 * it was interrupted.  Their DONE runs on this thread; one may finish OP.
 */
void fm_ports_withdraw(const struct vn_op *op);

/* Closes F's ports: their clients' streams end.  Before F is freed. */
void fm_ports_close(struct vn_filter *f);

#endif
