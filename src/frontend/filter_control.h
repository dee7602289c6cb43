/*
 * The control verbs of `veneer filter`: the stack's report, messages to
 * filters' ports, live load and unload.
 *   filters json|text              text: the report (filter_list.h)
 *   port FILTER PORT HEX           text: the reply, as hex (port_frame.h)
 *   load PATH.so[:ARGS]            text: the filter's name
 *   unload NAME force|wait         (fm_unload)
 */
#ifndef VENEER_FILTER_CONTROL_H
#define VENEER_FILTER_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

/* True when VERB is one of these. */
bool filter_control_serves(const char *verb);

/* As struct control_handler's call, for the verbs above. */
int filter_control_call(const char *verb, int nargs, char **args, char **ret_text, char *err,
			size_t errlen);

#endif
