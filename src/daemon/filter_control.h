/*
 * The control verbs of `veneer filter`: the stack's report, messages to
 * filters' ports, live load and unload.
 *   filters json|text              text: the report (filter_list.h)
 *   port FILTER PORT HEX           text: the reply, as hex (port_frame.h)
 *   load PATH.so[:ARGS]            text: the filter's name
 *   unload NAME force|wait         (fm_unload)
 *   answer FILTER PORT ID HEX      a client's reply to question ID
 * and the streaming verb
 *   listen FILTER PORT             the caller becomes the port's client: each
 *                                  question comes as a line "ID HEX\n"
 *   stream FILTER PORT HEX         a stream port's client, its request HEX:
 *                                  each frame comes as a line "HEX\n"
 */
#ifndef VENEER_FILTER_CONTROL_H
#define VENEER_FILTER_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* True when VERB is one of these. */
bool filter_control_serves(const char *verb);

/* As struct control_handler's call, for the verbs above. */
int filter_control_call(const char *verb, int nargs, char **args, char **ret_text, char *err,
			size_t errlen);

/* The stream of `listen`: as control_stream_ops' open (PEER: the client), next, close. */
int filter_control_listen(pid_t peer, int nargs, char **args, void **ret_ctx, char *err,
			  size_t errlen);
int filter_control_listen_next(void *ctx, char **buf, size_t *len, size_t *cap, int timeout_ms);
void filter_control_listen_close(void *ctx);

/* The stream of `stream`: as control_stream_ops' open, next, close. */
int filter_control_stream(int nargs, char **args, void **ret_ctx, char *err, size_t errlen);
int filter_control_stream_next(void *ctx, char **buf, size_t *len, size_t *cap, int timeout_ms);
void filter_control_stream_close(void *ctx);

#endif
