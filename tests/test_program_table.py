"""The guard against programs that only a hand-installed machine has
(scripts/check-programs.py): it passes on the project's own tree and fails,
naming the program and the package, on trees that make the mistakes it is
there to catch."""
import os
import shutil
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = os.path.join(TOP, "scripts", "check-programs.py")

BASE_TABLE = "python3\tpython3\truntime\ncat\tcoreutils\truntime\n"


def fake_tree(tmp_path, files, table=BASE_TABLE, pkgs="python3"):
    """A checkout holding only FILES, the table and an install script."""
    root = tmp_path / "tree"
    (root / "scripts").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "scripts" / "programs.tsv").write_text("# program\tpackage\tuse\n" + table)
    (root / "scripts" / "install-deps.sh").write_text(
        '#!/bin/sh\nBUILD_PKGS="gcc"\nTEST_PKGS="%s"\n' % pkgs)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def check(root, *extra):
    r = subprocess.run([sys.executable, CHECK, "--root", str(root)] + list(extra),
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_project_tree_passes():
    rc, out = check(TOP, "--no-installed")
    assert rc == 0, out
    assert "each listed" in out


def test_unlisted_program_in_python_test_fails(tmp_path):
    root = fake_tree(tmp_path, {"tests/test_fake.py":
                                "import subprocess\n"
                                "def test_x():\n"
                                "    subprocess.run(['frobnicate', '-x'], check=True)\n"
                                "    subprocess.run(['cat', '/dev/null'])\n"})
    rc, out = check(root, "--no-installed")
    assert rc == 1, out
    assert "tests run 'frobnicate' (tests/test_fake.py)" in out
    assert "does not list" in out
    assert "'cat'" not in out	# listed: no complaint


def test_unlisted_program_in_shell_and_c_fails(tmp_path):
    root = fake_tree(tmp_path, {
        "scripts/run.sh": "#!/bin/bash\nset -eu\nx=$(zorblat --version | head -n 1)\n"
                          "local a=() files=(tests data) b+=(more)\n",
        "src/thing_test.c": 'int main(void) { return system("quuxify -q a.txt"); }\n'})
    rc, out = check(root, "--no-installed")
    assert rc == 1, out
    assert "'zorblat' (scripts/run.sh)" in out
    assert "'head' (scripts/run.sh)" in out
    assert "'quuxify' (src/thing_test.c)" in out
    assert "'tests'" not in out and "'data'" not in out and "'more'" not in out	# array words


def test_package_missing_from_install_script_fails(tmp_path):
    """The mistake that once landed: a C test ran setfattr, whose package
    (attr) nothing installed, and only a hand-installed machine passed."""
    root = fake_tree(tmp_path,
                     {"src/layer/source_test.c":
                      'static void f(void) { sh("setfattr -n user.a -v b %s/x", tmp); }\n'},
                     table=BASE_TABLE + "setfattr\tattr\trequired\n")
    rc, out = check(root)
    assert rc == 1, out
    assert ("tests run 'setfattr' (src/layer/source_test.c), which package attr provides; "
            "add attr to scripts/install-deps.sh") in out
    # once the package is in the install script the complaint is about the
    # machine (attr may or may not be installed here), never the script
    root = fake_tree(tmp_path / "again",
                     {"src/layer/source_test.c":
                      'static void f(void) { sh("setfattr -n user.a -v b %s/x", tmp); }\n'},
                     table=BASE_TABLE + "setfattr\tattr\trequired\n", pkgs="python3 attr")
    rc, out = check(root)
    assert "add attr to" not in out
    assert (rc == 0) == (shutil.which("setfattr") is not None), out


def test_guarded_use_is_optional(tmp_path):
    script = ("#!/bin/sh\nif command -v setfattr >/dev/null; then\n"
              "\tsetfattr -n user.a -v b f\nfi\n")
    root = fake_tree(tmp_path, {"tests/make.sh": script},
                     table=BASE_TABLE + "setfattr\tattr\toptional\n")
    rc, out = check(root)
    assert rc == 0, out
    # marked required although only probed: the table is wrong
    root = fake_tree(tmp_path / "again", {"tests/make.sh": script},
                     table=BASE_TABLE + "setfattr\tattr\trequired\n", pkgs="python3 attr")
    rc, out = check(root, "--no-installed")
    assert rc == 1 and "mark it 'optional'" in out, out


def test_stale_and_malformed_entries_fail(tmp_path):
    root = fake_tree(tmp_path, {"tests/test_fake.py": "import os\n"},
                     table=BASE_TABLE + "gone\tgone-pkg\trequired\n")
    rc, out = check(root, "--no-installed")
    assert rc == 1 and "lists 'gone' as required, but no test or script runs it" in out, out
    root = fake_tree(tmp_path / "bad", {}, table="cat coreutils sometimes\n")
    rc, out = check(root, "--no-installed")
    assert rc == 1 and "programs.tsv:2" in out, out
