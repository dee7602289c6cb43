/* Subcommands of the veneer program. */
#ifndef VENEER_CLI_H
#define VENEER_CLI_H

int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
void cmd_mount_usage(void);
int cmd_attach(int argc, char **argv);	/* cmd_layer.c */
int cmd_detach(int argc, char **argv);	/* cmd_layer.c */
int cmd_status(int argc, char **argv);	/* cmd_layer.c */
int cmd_trace(int argc, char **argv);	/* cmd_trace.c */
int cmd_pack(int argc, char **argv);	/* cmd_pack.c */
int cmd_ls(int argc, char **argv);	/* cmd_ls.c */
int cmd_filter(int argc, char **argv);	/* cmd_filter.c */
int cmd_verify(int argc, char **argv);	/* cmd_verify.c */
int cmd_prefetch(int argc, char **argv);	/* cmd_prefetch.c */

/*
 * MOUNTPOINT made absolute into out (PATH_MAX bytes), also for a mount the
 * caller cannot stat; prints "veneer: CMD: ..." and returns -errno if not.
 */
int cli_resolve_mountpoint(const char *cmd, const char *arg, char *out);

struct remote_options;
/*
 * One option about remote images into o: "cacert" (a PEM file),
 * "cache-dir", "cache-size" (bytes, with a K, M, G or T suffix) or
 * "fetch-timeout" (seconds, decimals allowed).  Paths are made absolute
 * (kept until the program exits).  Returns 1 when name is one of them and
 * value is good, 0 when name is none of them, -1 (a message printed)
 * when value is bad.
 */
int cli_remote_option(const char *cmd, struct remote_options *o, const char *name,
		      const char *value);

#endif
