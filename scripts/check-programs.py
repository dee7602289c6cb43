#!/usr/bin/env python3
"""Checks that every program the tests and scripts run is installed by
scripts/install-deps.sh, or comes with every Debian system.

A green run on a machine where someone once installed a package by hand
says nothing about a fresh machine.  This guard compares three things:

  - the programs that the test and script sources execute, found by a scan
    (Python: calls such as subprocess.run(["prog", ...]) and shutil.which;
    C tests: the shell strings given to system() and sh(); shell scripts,
    Makefile recipes and `sh -c` strings: the first word of each command);
  - the table scripts/programs.tsv, which names each program's Debian
    package, and marks optional uses (behind `command -v`) and programs
    that are only named at run time (listed by hand);
  - the packages scripts/install-deps.sh installs.

It fails when a scanned program is not in the table, when a required
program is missing from this machine, or when its package is neither in
install-deps.sh nor one that every Debian system has (priority required,
or essential), which is what debootstrap's minbase variant installs.

The scan finds most uses, not all: a command built in a variable is
invisible to it, which is what the table's `runtime` entries are for.

Usage: check-programs.py [--root DIR]   (DIR: the checkout, default ..)
"""
import argparse
import ast
import os
import re
import shlex
import shutil
import subprocess
import sys

TABLE = "scripts/programs.tsv"
USES = ("required", "runtime", "optional", "prereq", "own")
INSTALLER = "scripts/install-deps.sh"

# Where programs are run from, relative to the checkout.
SCAN_GLOBS = [
    ("tests", (".py",)),
    ("tests", (".sh",)),
    ("tests", (".c",)),
    ("src", ("_test.c",)),
    ("scripts", (".sh", ".py")),
]
SCAN_FILES = [".ci/run", "Makefile"]

# Calls whose first argument, when a list literal, is a command line.
EXEC_CALLS = {"run", "Popen", "check_output", "check_call", "call", "spawn"}

SHELL_WORDS = {
    # keywords
    "if", "then", "else", "elif", "fi", "for", "in", "do", "done", "while", "until",
    "case", "esac", "function", "select", "time", "!", "{", "}", "[[", "]]",
    # builtins
    ".", ":", "[", "alias", "break", "builtin", "cd", "command", "continue", "declare",
    "echo", "eval", "exec", "exit", "export", "false", "getopts", "hash", "local",
    "printf", "pwd", "read", "readonly", "return", "set", "shift", "source", "test",
    "trap", "true", "type", "ulimit", "umask", "unset", "wait", "let", "shopt", "kill",
}
# Wrappers whose own arguments start another command.
WRAPPERS = {"timeout", "env", "nice", "nohup", "xargs", "sudo", "exec", "command", "setsid",
            "stdbuf", "chroot"}


def fail(msg):
    print("check-programs: " + msg, file=sys.stderr)


def read_table(root):
    """Returns {program: (package, use)}; see the head of the table for uses."""
    table = {}
    with open(os.path.join(root, TABLE)) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            cols = line.split()
            if len(cols) != 3 or cols[2] not in USES:
                raise SystemExit("check-programs: %s:%d: want 'PROGRAM PACKAGE %s'" %
                                 (TABLE, n, "|".join(USES)))
            table[cols[0]] = (cols[1], cols[2])
    return table


def installed_by_script(root):
    """The package names listed in install-deps.sh's *_PKGS variables."""
    pkgs = set()
    with open(os.path.join(root, INSTALLER)) as f:
        for m in re.finditer(r'^[A-Z_]+_PKGS="([^"]*)"', f.read(), re.M):
            pkgs.update(m.group(1).split())
    return pkgs


# --- shell -----------------------------------------------------------------

def strip_heredocs(text):
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        i += 1
        if m:
            end = m.group(1)
            while i < len(lines) and lines[i].strip() != end:
                i += 1
            i += 1
    return "\n".join(out)


def split_substitutions(text):
    """Returns (text with each $(...) and `...` replaced by $S, [their bodies])."""
    out, subs, i, quote = [], [], 0, None
    while i < len(text):
        c = text[i]
        if quote == "'":
            quote = None if c == "'" else quote
        elif c == "'" and quote is None:
            quote = "'"
        elif c == '"':
            quote = None if quote == '"' else '"'
        elif c == "\\":
            out.append(text[i:i + 2])
            i += 2
            continue
        elif text.startswith("$(", i) and not text.startswith("$((", i):
            depth, j = 1, i + 2
            while j < len(text) and depth:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            subs.append(text[i + 2:j - 1])
            out.append("$S")
            i = j
            continue
        elif c == "`":
            j = text.find("`", i + 1)
            j = len(text) if j < 0 else j
            subs.append(text[i + 1:j])
            out.append("$S")
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out), subs


def shell_tokens(text):
    """Splits shell text into words (quotes removed) and operators."""
    lex = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
    lex.whitespace = " \t\r"
    lex.commenters = "#"
    lex.wordchars += "$-/.=:,+%@{}[]*?~^!"
    toks = []
    try:
        for t in lex:
            toks.append(t)
    except ValueError:	# an unclosed quote: take what was read
        pass
    return toks


STARTS = {"\n", ";", "&&", "||", "|", "&", "(", ";;", "|&", "then", "do", "else", "elif",
          "if", "while", "until", "!", "{", "time"}
REDIRECTS = {">", "<", ">>", ">&", "<&", "&>", ">|", "<<<"}


def shell_commands(text, functions=()):
    """Yields the program name of each simple command in shell text."""
    text = strip_heredocs(text).replace("\\\n", " ")
    text = re.sub(r"\$\{[^}]*\}", "$V", text)
    text, subs = split_substitutions(text)
    for sub in subs:
        yield from shell_commands(sub, functions)
    # `case` patterns end in ')': drop them so the word after starts a command.
    text = re.sub(r"^\s*[^\s()]+\)", "", text, flags=re.M)
    expect, skip, prev, in_array = True, 0, None, False
    for tok in shell_tokens(text):
        was, prev = prev, tok
        if in_array:	# the words of NAME=( ... ) are data
            if tok.startswith(")"):	# ")" or ");" and the like
                in_array = False
                expect = expect or tok[1:] in STARTS
            continue
        if tok == "(" and was and re.match(r"^[A-Za-z_][A-Za-z_0-9]*\+?=$", was):
            in_array = True
            continue
        if was == "command" and tok in ("-v", "-V"):
            skip = 1	# a probe: the name that follows is not run
            continue
        if tok in STARTS:
            expect = True
            continue
        if tok in REDIRECTS or tok in (")", "}") or was in REDIRECTS:
            continue
        if not expect:
            continue
        if skip:
            skip -= 1
            continue
        if re.match(r"^[A-Za-z_][A-Za-z_0-9]*(\[[^]]*\])?\+?=", tok):	# VAR=value cmd
            continue
        if tok.startswith("-") or tok.isdigit():	# a wrapper's option or duration
            continue
        if tok in ("type", "hash"):
            skip = 1
            continue
        if tok == "command":
            continue
        if tok in WRAPPERS:
            skip = 1 if tok == "timeout" else 0
            yield tok
            continue
        expect = False
        if tok in SHELL_WORDS or tok in functions or "$" in tok or "%" in tok:
            continue	# the shell's own, or built at run time
        if "/" in tok:
            if not tok.startswith(("/usr/", "/bin/", "/sbin/")):
                continue	# the project's own scripts and build results
            tok = os.path.basename(tok)
        if re.match(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", tok):
            yield tok


def shell_functions(text):
    return set(re.findall(r"^\s*(?:function\s+)?([A-Za-z_][A-Za-z_0-9]*)\s*\(\)", text, re.M))


def optional_in_shell(text):
    """Programs probed with `command -v` (their use is guarded)."""
    return set(re.findall(r"command -v\s+['\"]?([A-Za-z0-9_.+-]+)", text))


# --- Python ----------------------------------------------------------------

def literal_str(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def python_programs(text, name):
    """Yields (program, optional) for each program a Python file runs."""
    try:
        tree = ast.parse(text, name)
    except SyntaxError as e:
        raise SystemExit("check-programs: cannot parse %s: %s" % (name, e))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
        if fname == "which" and node.args and literal_str(node.args[0]):
            yield literal_str(node.args[0]), False
            continue
        if fname == "system" and node.args and literal_str(node.args[0]):
            for p in shell_commands(literal_str(node.args[0])):
                yield p, False
            continue
        if fname not in EXEC_CALLS or not node.args:
            continue
        arg = node.args[0]
        if isinstance(arg, ast.BinOp):	# ["prog"] + args
            arg = arg.left
        if not isinstance(arg, (ast.List, ast.Tuple)) or not arg.elts:
            continue
        words = [literal_str(e) for e in arg.elts]
        prog = words[0]
        if prog is None:
            continue	# sys.executable, VENEER, a path built at run time
        if "/" in prog:
            if not prog.startswith(("/usr/", "/bin/", "/sbin/")):
                continue
            prog = os.path.basename(prog)
        yield prog, False
        # sh -c 'string': the string's commands run too
        for i, w in enumerate(words[:-1]):
            if w == "-c" and prog in ("sh", "bash") and words[i + 1]:
                for p in shell_commands(words[i + 1]):
                    yield p, False


# --- C ---------------------------------------------------------------------

def c_shell_strings(text):
    """The string literals passed to system() or a sh() helper."""
    for m in re.finditer(r"\b(?:system|sh)\s*\(\s*((?:\"(?:[^\"\\]|\\.)*\"\s*)+)", text):
        parts = re.findall(r"\"((?:[^\"\\]|\\.)*)\"", m.group(1))
        yield "".join(parts).replace("\\n", "\n").replace("\\'", "'")


# --- scan ------------------------------------------------------------------

def source_files(root):
    seen = set()
    for top, exts in SCAN_GLOBS:
        for d, dirs, files in os.walk(os.path.join(root, top)):
            dirs[:] = [x for x in dirs if x not in ("crashers", "__pycache__")]
            for fn in sorted(files):
                if fn.endswith(exts):
                    seen.add(os.path.join(d, fn))
    for fn in SCAN_FILES:
        p = os.path.join(root, fn)
        if os.path.exists(p):
            seen.add(p)
    return sorted(seen)


def makefile_recipes(text):
    text = "\n".join(l[1:].lstrip("@-") for l in text.split("\n") if l.startswith("\t"))
    return re.sub(r"\$\((\w+)\)", r"$\1", text)


def scan(root):
    """Returns {program: [(file, optional), ...]}."""
    found = {}
    for path in source_files(root):
        rel = os.path.relpath(path, root)
        with open(path, errors="replace") as f:
            text = f.read()
        uses = []
        if rel.endswith(".py"):
            uses = list(python_programs(text, rel))
        elif rel.endswith(".c"):
            for s in c_shell_strings(text):
                uses += [(p, False) for p in shell_commands(s)]
        else:
            if rel == "Makefile":
                text = makefile_recipes(text)
            guarded = optional_in_shell(text)
            uses = [(p, p in guarded) for p in shell_commands(text, shell_functions(text))]
        for prog, optional in uses:
            found.setdefault(prog, []).append((rel, optional))
    return found


def package_is_base(pkg):
    """True for a package that every Debian system has (minbase's set)."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Priority} ${Essential}", pkg],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return False
    prio, _, essential = r.stdout.partition(" ")
    return prio == "required" or essential.strip() == "yes"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   ".."))
    ap.add_argument("--no-installed", action="store_true",
                    help="check only the table against the sources, not this machine")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    table = read_table(root)
    script_pkgs = installed_by_script(root)
    found = scan(root)
    errors = 0

    for prog in sorted(found):
        if prog in table:
            continue
        where = ", ".join(sorted({f for f, _ in found[prog]}))
        fail("tests run '%s' (%s), which scripts/programs.tsv does not list; add it with "
             "the Debian package that provides it (dpkg -S $(command -v %s))" % (prog, where, prog))
        errors += 1

    for prog, (pkg, use) in sorted(table.items()):
        guarded_only = prog in found and all(opt for _, opt in found[prog])
        if use in ("optional", "own"):
            continue
        if use == "required" and prog not in found:
            fail("scripts/programs.tsv lists '%s' as required, but no test or script runs "
                 "it; remove it, or mark it 'runtime' if it is named at run time" % prog)
            errors += 1
            continue
        if use == "required" and guarded_only:
            fail("'%s' is only run behind `command -v`; mark it 'optional' in "
                 "scripts/programs.tsv" % prog)
            errors += 1
            continue
        if args.no_installed:
            continue
        where = ", ".join(sorted({f for f, _ in found.get(prog, [])})) or "named at run time"
        if use != "prereq" and pkg not in script_pkgs and not package_is_base(pkg):
            fail("tests run '%s' (%s), which package %s provides; add %s to %s" %
                 (prog, where, pkg, pkg, INSTALLER))
            errors += 1
        elif shutil.which(prog, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            fail("tests run '%s' (%s), which package %s provides, but it is not installed; "
                 "run %s --test" % (prog, where, pkg, INSTALLER))
            errors += 1

    if errors:
        fail("%d problem(s); see scripts/programs.tsv" % errors)
        return 1
    print("check-programs: %d programs, each listed%s" %
          (len(table), "" if args.no_installed else " and installed"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
