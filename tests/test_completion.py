"""The bash completion script (completion/veneer): sourced in a
non-interactive bash, its function called with COMP_WORDS and COMP_CWORD
as bash would set them."""
import os
import re
import subprocess

from conftest import BUILD, TOP, VENEER, pack, wfile

SCRIPT = os.path.join(TOP, "completion", "veneer")


def complete(*words, cwd=None):
    """What _veneer offers for the command line `veneer WORDS...`, the last
    word being the one completed."""
    words = [VENEER] + list(words)
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    prog = (f'source "$1"; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _veneer; '
            'printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run(["bash", "-c", prog, "bash", SCRIPT], capture_output=True, text=True,
                       timeout=30, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return set(line for line in r.stdout.split("\n") if line)


def help_commands():
    """{command: {options}} from the usage lines of `veneer --help`; the
    filter commands as "filter list", "filter send", ..."""
    text = subprocess.run([VENEER, "--help"], capture_output=True, text=True,
                          check=True).stdout
    block = text.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    out, cmd = {}, None
    for line in block.split("\n"):
        m = re.match(r"  (filter [a-z]+|[a-z]+) ", line + " ")
        if m:
            cmd = m.group(1)
            out[cmd] = set()
        usage = line.split("  ", 2)[1] if line.startswith("  ") and cmd else ""
        if m or line.startswith("        ["):
            out[cmd] |= set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", usage or line))
    return out


def test_subcommands_and_options_from_help():
    cmds = help_commands()
    assert {"mount", "umount", "attach", "detach", "status", "trace", "pack", "ls", "verify",
            "filter list", "filter send", "filter stream", "filter load",
            "filter unload"} <= set(cmds)
    assert complete("") >= {c.split()[0] for c in cmds} | {"--help", "--version"}
    assert complete("st") == {"status"}
    assert complete("filter", "") == {"list", "send", "stream", "load", "unload", "--help"}
    for cmd, opts in cmds.items():
        offered = complete(*cmd.split(), "-")
        assert opts <= offered, (cmd, opts - offered)
        assert "--help" in offered
    assert {"--digest", "--no-tree", "--force", "--json"} <= set().union(*cmds.values())
    assert complete("mount", "--ca") == {"--cache", "--cacert", "--cache-dir", "--cache-size"}
    assert complete("pack", "--no") == {"--no-tree"}


def test_option_values():
    assert complete("mount", "--cache", "") == {"auto", "always", "never"}
    # bash splits --opens=pa at "=": the value is completed after it
    assert complete("mount", "--opens", "=", "pa") == {"passthrough"}
    assert complete("mount", "--opens", "=") == {"skip", "send", "passthrough"}
    assert complete("pack", "--comp", "z") == {"zstd"}
    assert complete("trace", "/m", "--op", "read,wr") == {"read,write"}
    # a glob of paths in the mount, not of files here
    assert complete("trace", "/m", "--path", "", cwd=TOP) == set()
    assert complete("mount", "-o", "allow_other,no") == {"allow_other,notrace"}
    assert complete("mount", "-o", "ro,cache", "=", "n") == {"never"}
    assert complete("mount", "-o", "cache", "=", "auto,op") == {"auto,opens="}
    # a digest is typed, not completed; the word after it is the next argument
    assert complete("verify", "--digest", "") == set()
    assert complete("attach", "--digest", "=", "sha256", ":", "ab", "/nowhere", "/",
                    cwd=TOP) == set(f"/{n}" for n in os.listdir("/"))


def test_files_and_filters(env):
    d = env.mkdir("d")
    wfile(os.path.join(d, "deny.so"))
    wfile(os.path.join(d, "notes.txt"))
    os.mkdir(os.path.join(d, "sub"))
    assert complete("mount", "--filter", "", cwd=d) == {"deny.so", "sub"}
    assert complete("ls", "no", cwd=d) == {"notes.txt"}
    assert complete("verify", "no", cwd=d) == {"notes.txt"}
    assert complete("filter", "load", "/m", "", cwd=d) == {"deny.so", "sub"}
    assert complete("pack", "", cwd=d) == {"sub"}


def test_live_mounts_and_layers(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("with space")
    img = pack(env, {"tool": b"x"})
    odd = env.mkdir('dir "quoted" $HOME *')
    env.mount(lower, mnt, args=["--layer", img + ":/opt/tool"])
    env.veneer("attach", mnt, odd, '/a "b" $HOME *', check=True)
    assert mnt in complete("umount", "")
    assert complete("status", env.path("with")) == {mnt}
    assert mnt in complete("detach", "")
    # status shows each image's integrity: the layers come from its JSON
    assert complete("detach", mnt, "") == {"1", "/opt/tool", "2", '/a "b" $HOME *'}
    assert complete("detach", mnt, "/o") == {"/opt/tool"}
    assert complete("attach", mnt, env.path("img.sq")) == {img, img + ".src"}
    assert lower not in complete("umount", "")


def test_filters_of_a_live_mount(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    env.mount(lower, mnt, args=["--filter", os.path.join(BUILD, "tests", "port_filter.so")])
    names = {"trace", "virtualize", "test-ports"}
    assert mnt in complete("filter", "list", "")
    assert complete("filter", "unload", mnt, "") == names
    assert complete("filter", "unload", "--force", mnt, "te") == {"test-ports"}
    # send takes FILTER or FILTER/PORT: the ports come from `filter list --json`
    assert complete("filter", "send", mnt, "") == names | {
        "test-ports/echo", "test-ports/deny", "test-ports/fill",
        "virtualize/attach", "virtualize/detach", "trace/watch"}
    assert complete("filter", "send", mnt, "test-ports/d") == {"test-ports/deny"}
    assert complete("filter", "send", mnt, "test-ports/echo", "") == set()
    assert complete("filter", "unload", env.path("lower"), "") == set()
