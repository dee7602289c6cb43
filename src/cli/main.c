/*
 * veneer: one program, subcommands in a table.  Called without a
 * subcommand as "veneer LOWER MOUNTPOINT -o OPTS" (the form mount.fuse3
 * uses for "mount -t fuse.veneer"), it mounts.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: veneer <command> [options]\n"
		"\n"
		"A stackable filter filesystem: mounts over a real directory and passes every\n"
		"operation through a stack of filters to the real files.\n"
		"\n"
		"commands:\n"
		"  mount [-f] [-o OPTS] [--cache=auto|always|never] [--opens=skip|send|passthrough]\n"
		"        [--killpriv=on|off] [--uring] [--threads N] [--filter PATH.so[:ARGS]]...\n"
		"        [--layer SRC[:PATH][#sha256:HEX]]... [--trace=FILE] [--no-trace]\n"
		"        [--cacert FILE] [--cache-dir DIR] [--cache-size SIZE] [--fetch-timeout SEC]\n"
		"        LOWER [MOUNTPOINT]\n"
		"                        mount LOWER at MOUNTPOINT (default: in place, over LOWER)\n"
		"  umount [-l] MOUNTPOINT  unmount (-l: lazily, even while files are open)\n"
		"  attach [--digest sha256:HEX] [--cacert FILE] [--cache-dir DIR]\n"
		"        [--cache-size SIZE] [--fetch-timeout SEC] MOUNTPOINT SOURCE [PATH]\n"
		"                        project an image (a file or an http(s) URL) or a\n"
		"                        directory at PATH of a live mount (--digest: refuse an\n"
		"                        image with another hash tree root)\n"
		"  detach MOUNTPOINT PATH|LAYER_ID\n"
		"                        remove a layer from a live mount\n"
		"  status [--json | --prometheus] [--watch] MOUNTPOINT\n"
		"                        show a mount's layers, caches and operation statistics\n"
		"                        (--watch: every second; --prometheus: the Prometheus\n"
		"                        text format, for a scraper or a textfile collector)\n"
		"  trace MOUNTPOINT [--op OP,...] [--path GLOB] [--pid PID] [--errors]\n"
		"        [--slow USEC] [--json]\n"
		"                        watch the operations a mount serves, live\n"
		"  pack [--comp C] [--force] [--no-tree] DIR -o IMAGE\n"
		"                        build a squashfs image of DIR (runs mksquashfs) with a\n"
		"                        hash tree; prints its digest\n"
		"  ls IMAGE [PATH]       list an image's contents without mounting\n"
		"  filter list [--json] MOUNTPOINT\n"
		"                        show a mount's filters: altitude, operations, ports\n"
		"  filter send MOUNTPOINT FILTER[/PORT] MESSAGE...\n"
		"                        send a message to a filter's port, print the reply\n"
		"  filter stream MOUNTPOINT FILTER[/PORT] [REQUEST...]\n"
		"                        print the frames of a filter's stream port until ^C\n"
		"  filter load MOUNTPOINT PATH.so[:ARGS]\n"
		"                        load a filter into a live mount\n"
		"  filter unload [--force] MOUNTPOINT NAME\n"
		"                        drain a filter's operations and remove it\n"
		"  verify [--digest sha256:<hex>] [--cacert FILE] IMAGE|URL\n"
		"                        check a whole image against its hash tree\n"
		"  prefetch MOUNTPOINT PATH...\n"
		"                        read every file under PATH once, so that remote layers\n"
		"                        fetch and cache what they hold\n"
		"\n"
		"  veneer LOWER MOUNTPOINT -o OPTS   the mount.fuse3 form ('mount -t fuse.veneer')\n"
		"\n"
		"options:\n"
		"  -h, --help            this text ('veneer mount --help' for mount options)\n"
		"  -V, --version         print the version\n"
		"\n"
		"See veneer(1).\n");
}

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
	{ "mount", cmd_mount },
	{ "umount", cmd_umount },
	{ "unmount", cmd_umount },
	{ "attach", cmd_attach },
	{ "detach", cmd_detach },
	{ "status", cmd_status },
	{ "trace", cmd_trace },
	{ "pack", cmd_pack },
	{ "ls", cmd_ls },
	{ "filter", cmd_filter },
	{ "verify", cmd_verify },
	{ "prefetch", cmd_prefetch },
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("veneer %s\n", VENEER_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(cmd, commands[i].name))
			continue;
		/* getopt names argv[0] in its messages: make them "veneer: CMD: ..." */
		static char prog[64];
		snprintf(prog, sizeof(prog), "veneer: %s", cmd);
		argv[1] = prog;
		return commands[i].run(argc - 1, argv + 1);
	}
	if (cmd[0] != '-' && (cmd[0] == '/' || cmd[0] == '.' || strchr(cmd, '/')))
		return cmd_mount(argc, argv);	/* mount.fuse3 helper form */
	fprintf(stderr, "veneer: unknown command '%s' (see 'veneer --help')\n", cmd);
	return 2;
}
