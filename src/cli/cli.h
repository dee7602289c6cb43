/* Subcommands of the veneer program. */
#ifndef VENEER_CLI_H
#define VENEER_CLI_H

int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
void cmd_mount_usage(void);

#endif
