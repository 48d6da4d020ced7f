"""Each function's deploy context is self-contained: the func.yaml build step stages the shared library
into it, and the staged directory answers an invoke under the real ``fdk`` entrypoint with nothing on
its path but itself and the installed requirements, the way the Fn image runs it
(``PYTHONPATH=/function:/python``, ``/python/bin/fdk /function/func.py handler``).

An audit hook in the launcher reports every file opened from the repository's sources: a staged
function that still reached for ``functions/streamcache`` would be caught even if it worked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import orjson
import pytest
import yaml

import streamcache_local.fn_runner as fn_runner

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "functions" / "streamcache"
STAGE = REPO / "infra" / "stage_function.py"
FUNCTIONS = ["cache", "compactor"]
OUTSIDE = "OPENED-OUTSIDE-THE-IMAGE:"
INSIDE = "STREAMCACHE-LOADED-FROM:"

# The launcher stands for /python/bin/fdk in the image: isolated (-I: no PYTHON* variables, no script
# or working directory on the path) and without site (-S: no .pth files, so not the editable install
# of this repository); its path is the function directory, then the installed packages.
LAUNCHER = """#!{python} -IS
import os, sys
FUNCTION, PACKAGES, REPO, VENV = {function!r}, {packages!r}, {repo!r}, {venv!r}
sys.path[:0] = [FUNCTION, PACKAGES]
seen = set()

def audit(event, args):
    if event != "open" or not isinstance(args[0], str):
        return
    path = os.path.abspath(args[0])
    if path.startswith(REPO + os.sep) and not path.startswith(VENV + os.sep) and path not in seen:
        seen.add(path)
        sys.stderr.write("{outside} " + path + "\\n")
    elif path.startswith(os.path.join(FUNCTION, "streamcache", "__init__.py")) and "lib" not in seen:
        seen.add("lib")
        sys.stderr.write("{inside} " + os.path.dirname(path) + "\\n")

sys.addaudithook(audit)
from fdk.scripts.fdk import main
sys.exit(main())
"""


def stage_like_fn_build(function: str, root: Path) -> Path:
    """A copy of functions/<function> (without any earlier staged copy) beside a view of the repo's
    infra/, then func.yaml's build commands run in it exactly as `fn build` runs them."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "infra").symlink_to(REPO / "infra")
    function_dir = root / "functions" / function
    shutil.copytree(REPO / "functions" / function, function_dir,
                    ignore=shutil.ignore_patterns("__pycache__", "streamcache", ".streamcache-*"))
    for command in yaml.safe_load((function_dir / "func.yaml").read_text())["build"]:
        subprocess.run(["/bin/sh", "-c", command], cwd=function_dir, check=True, capture_output=True, timeout=60)
    return function_dir


@pytest.fixture
def short_tmp():
    path = tempfile.mkdtemp(prefix="sc-pk-", dir="/tmp")  # unix socket paths are limited to 107 bytes
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


def sources(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_build_step_stages_a_clean_copy_of_the_library(function, short_tmp):
    (LIBRARY / "__pycache__").mkdir(exist_ok=True)  # what a test run leaves behind must not ship
    function_dir = stage_like_fn_build(function, short_tmp)
    staged = function_dir / "streamcache"
    # Only the rooms the function runs: never the client or the command line, nor the other function.
    other = "compactor" if function == "cache" else "cache"
    left_out = ("client/", "cli/", f"{other}/")
    expected = {s for s in sources(LIBRARY) if not s.startswith(left_out)} | {".staged-copy"}

    assert sources(staged) == expected
    assert not any((staged / room.rstrip("/")).exists() for room in left_out) and (staged / function).is_dir()
    assert not any(p.name == "__pycache__" or p.suffix == ".pyc" for p in staged.rglob("*"))
    assert (staged / "settings.py").read_bytes() == (LIBRARY / "settings.py").read_bytes()

    (staged / "stale.py").write_text("")  # staging again replaces the copy, leftovers included
    subprocess.run([sys.executable, str(STAGE), str(function_dir)], check=True, capture_output=True)
    assert not (staged / "stale.py").exists() and sources(staged) == expected


def test_staging_never_deletes_a_directory_it_did_not_make(short_tmp):
    function_dir = short_tmp / "fn"
    (function_dir / "streamcache").mkdir(parents=True)
    (function_dir / "func.py").write_text("")
    (function_dir / "streamcache" / "precious.py").write_text("keep me")
    run = subprocess.run([sys.executable, str(STAGE), str(function_dir)], capture_output=True, text=True)
    assert run.returncode == 1 and "not a staged copy" in run.stderr
    assert (function_dir / "streamcache" / "precious.py").read_text() == "keep me"
    run = subprocess.run([sys.executable, str(STAGE), str(short_tmp)], capture_output=True, text=True)
    assert run.returncode == 1 and "no func.py" in run.stderr


@pytest.mark.parametrize("function", FUNCTIONS)
def test_git_ignores_the_staged_copy(function):
    probe = f"functions/{function}/streamcache/settings.py"
    run = subprocess.run(["git", "-C", str(REPO), "check-ignore", "--no-index", "-q", probe])
    assert run.returncode == 0, f"{probe} is not git-ignored"
    assert subprocess.run(["git", "-C", str(REPO), "check-ignore", "--no-index", "-q",
                           f"functions/{function}/func.py"]).returncode == 1


@pytest.mark.parametrize("function", FUNCTIONS)
def test_requirements_are_the_pinned_dependencies(function):
    pyproject = (REPO / "pyproject.toml").read_text()
    pinned = {line.strip().strip('",') for line in pyproject.split("dependencies = [")[1].split("]")[0].splitlines() if "==" in line}
    required = {line.strip() for line in (REPO / "functions" / function / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert required == pinned


@pytest.fixture
def launcher(short_tmp, monkeypatch):
    """Run instances of a staged function through the image-like launcher instead of the venv's fdk."""
    def make(function_dir: Path) -> Path:
        path = short_tmp / "fdk"
        path.write_text(LAUNCHER.format(
            python=sys.executable, function=str(function_dir), packages=sysconfig.get_paths()["purelib"],
            repo=str(REPO), venv=str(Path(sys.prefix)), outside=OUTSIDE, inside=INSIDE))
        path.chmod(0o755)
        monkeypatch.setattr(fn_runner, "fdk_script", lambda: str(path))
        return path
    return make


def answer_one_invoke(function: str, instance) -> None:
    if function == "cache":  # as API Gateway forwards it
        put = instance.client.http_call("PUT", "/cache/packaged%2Fkey", b"hello", {"Content-Type": "text/plain"})
        assert put.status in (200, 201), put
        got = instance.client.http_call("GET", "/cache/packaged%2Fkey")
        assert (got.status, got.body) == (200, b"hello")
    else:  # as the Resource Scheduler invokes it: an empty body is "compact now"
        answer = instance.client.invoke(b"")
        body = orjson.loads(answer.body)
        assert answer.status == 200 and body["status"] == 200, body
        assert body["action"] == "compact"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_staged_function_answers_with_only_itself_on_the_path(function, short_tmp, launcher):
    function_dir = stage_like_fn_build(function, short_tmp / "image")
    launcher(function_dir)
    config = {"STREAMCACHE_LOG_URL": f"memory://packaged-{function}",
              "STREAMCACHE_SNAPSHOT_URL": f"file://{short_tmp / 'snapshots'}"}
    instance = fn_runner.start_instance("p1", str(short_tmp), config, function_path=function_dir / "func.py")
    try:
        answer_one_invoke(function, instance)
    finally:
        instance.stop()
    stderr = instance.stderr_lines()
    assert [line for line in stderr if OUTSIDE in line] == []
    assert f"{INSIDE} {function_dir / 'streamcache'}" in stderr
    assert os.path.realpath(function_dir).startswith(str(short_tmp))
