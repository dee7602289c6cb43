"""The bash completion script (completion/veneer): sourced in a
non-interactive bash, its function called with COMP_WORDS and COMP_CWORD
as bash would set them."""
import os
import re
import subprocess

from conftest import TOP, VENEER, pack, wfile

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
    """{command: {options}} from the usage lines of `veneer --help`."""
    text = subprocess.run([VENEER, "--help"], capture_output=True, text=True,
                          check=True).stdout
    block = text.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    out, cmd = {}, None
    for line in block.split("\n"):
        m = re.match(r"  ([a-z]+) ", line + " ")
        if m:
            cmd = m.group(1)
            out[cmd] = set()
        usage = line.split("  ", 2)[1] if line.startswith("  ") and cmd else ""
        if m or line.startswith("        ["):
            out[cmd] |= set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", usage or line))
    return out


def test_subcommands_and_options_from_help():
    cmds = help_commands()
    assert {"mount", "umount", "attach", "detach", "status", "trace", "pack", "ls"} <= set(cmds)
    assert complete("") >= set(cmds) | {"--help", "--version"}
    assert complete("st") == {"status"}
    for cmd, opts in cmds.items():
        offered = complete(cmd, "-")
        assert opts <= offered, (cmd, opts - offered)
        assert "--help" in offered
    assert complete("mount", "--ca") == {"--cache", "--cacert", "--cache-dir", "--cache-size"}


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


def test_files_and_filters(env):
    d = env.mkdir("d")
    wfile(os.path.join(d, "deny.so"))
    wfile(os.path.join(d, "notes.txt"))
    os.mkdir(os.path.join(d, "sub"))
    assert complete("mount", "--filter", "", cwd=d) == {"deny.so", "sub"}
    assert complete("ls", "no", cwd=d) == {"notes.txt"}
    assert complete("pack", "", cwd=d) == {"sub"}


def test_live_mounts_and_layers(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("with space")
    img = pack(env, {"tool": b"x"})
    env.mount(lower, mnt, args=["--layer", img + ":/opt/tool"])
    assert mnt in complete("umount", "")
    assert complete("status", env.path("with")) == {mnt}
    assert mnt in complete("detach", "")
    assert complete("detach", mnt, "") == {"1", "/opt/tool"}
    assert complete("detach", mnt, "/o") == {"/opt/tool"}
    assert complete("attach", mnt, env.path("img.sq")) == {img, img + ".src"}
    assert lower not in complete("umount", "")
