"""``streamcache dev --like-oci`` through the console script: the freezer and scale-out are on (each
also a flag of its own), the instance is stopped (SIGSTOP) between requests and answers the next
one, and everything stops on Ctrl-C; with the Kafka front end (TLS, SASL, an added round trip, the
read budget) between the functions and the broker, and without it."""

from __future__ import annotations

import argparse
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streamcache.cli import main as cli
from streamcache_local.dev_command import oci_options
from support.waiting import wait_for

SCRIPT = Path(sys.executable).parent / "streamcache"


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def _flags(**given) -> argparse.Namespace:
    defaults = {"like_oci": False, "freeze_idle_ms": None, "max_instances": None, "front": None, "instances": 2}
    return argparse.Namespace(**{**defaults, **given})


def test_like_oci_sets_every_part_and_an_explicit_flag_wins():
    assert oci_options(_flags()) == {"freeze_idle_s": None, "max_instances": None, "front": False}
    assert oci_options(_flags(like_oci=True)) == {"freeze_idle_s": 0.05, "max_instances": 16, "front": True}
    assert oci_options(_flags(like_oci=True, freeze_idle_ms=-1.0, max_instances=4, front=False)) == {
        "freeze_idle_s": None, "max_instances": 4, "front": False}
    assert oci_options(_flags(freeze_idle_ms=200.0))["freeze_idle_s"] == 0.2


def test_max_instances_below_instances_is_refused(capsys):
    assert cli.main(["dev", "--instances", "4", "--max-instances", "2"]) == 2
    assert "--max-instances 2 is less than --instances 4" in capsys.readouterr().err


def _lines(pipe, sink: queue.Queue) -> None:
    for line in iter(pipe.readline, ""):
        sink.put(line)
    pipe.close()


@pytest.mark.parametrize("front", [[], ["--no-front"]], ids=["front", "no-front"])
def test_streamcache_dev_like_oci_freezes_idle_instances_and_serves(capsysbinary, tmp_path, front):
    process = subprocess.Popen([str(SCRIPT), "dev", "--like-oci", *front, "--port", "0", "--instances", "1",
                                "--data-dir", str(tmp_path / "data")],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    printed: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_lines, args=(process.stdout, printed), daemon=True)
    reader.start()
    pids: list[int] = []
    try:
        banner: list[str] = []
        deadline = time.monotonic() + 30
        while not banner or "Ctrl-C stops everything" not in banner[-1]:
            banner.append(printed.get(timeout=max(0.1, deadline - time.monotonic())))
        text = "".join(banner)
        assert "up to 16" in text and "freezer" in text and "50 ms" in text
        url = re.search(r"gateway\s+(http://127\.0\.0\.1:\d+)", text).group(1)
        pids = [int(pid) for pid in re.findall(r"pid (\d+)", text)]
        cache_pid = int(re.search(r"function\s+fn1 pid (\d+)", text).group(1))

        assert cli.main(["--url", url, "put", "a", "1"]) == 0
        wait_for(lambda: _state(cache_pid) == "T", timeout_s=10, what="the idle instance to be frozen")
        assert cli.main(["--url", url, "get", "a", "--strong"]) == 0  # continued for it
        assert capsysbinary.readouterr().out.endswith(b"1")

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0  # the final compaction thaws the frozen compactor
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        reader.join(5)
