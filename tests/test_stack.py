"""`up`'s supervisor: each process restarts on its own back-off, which resets after a
healthy run, and a crash-looping process never holds up another's restart or the stop."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from xsell_stream.config import load
from xsell_stream.stack import HEALTHY_SECONDS, Child, Stack

from .conftest import RECORDED_SHOPS, write_config


def test_the_pause_doubles_for_crashes_in_a_row_and_starts_afresh_after_a_healthy_run():
    child = Child("worker", ["true"], Path("unused.log"))
    pauses = []
    for _ in range(7):
        child.started_at = 1000.0  # each run lasted a second or less
        pauses.append(child.schedule_restart(1001.0))
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    child.started_at = 1000.0
    assert child.schedule_restart(1000.0 + HEALTHY_SECONDS) == 1.0
    assert child.restarts == 8 and child.failures == 1
    assert child.restart_at == 1001.0 + HEALTHY_SECONDS


def test_a_crash_looping_process_does_not_hold_up_another_restart_or_the_stop(tmp_path):
    stack = Stack(tmp_path / "xsell.toml", load(write_config(tmp_path, RECORDED_SHOPS)))
    looping = Child("looping", ["sleep", "0"], tmp_path / "looping.log")
    steady = Child("steady", ["sleep", "600"], tmp_path / "steady.log")
    looping.failures = 5  # its next pause is the longest, 30 s
    for child in (looping, steady):
        child.start()
        stack.children.append(child)
    stop = threading.Event()
    supervisor = threading.Thread(target=stack.supervise, args=(stop.is_set,))
    supervisor.start()
    try:
        deadline = time.monotonic() + 10
        while looping.restart_at is None:
            assert time.monotonic() < deadline, "the supervisor never saw the crash"
            time.sleep(0.05)
        first = steady.process
        assert first is not None
        first.kill()
        while steady.process is first or not steady.alive():
            assert time.monotonic() < deadline, "steady was not restarted within 10 s"
            time.sleep(0.05)
        assert (looping.restarts, steady.restarts) == (1, 1)
        assert looping.restart_at - time.monotonic() > 20  # still waiting out its 30 s
    finally:
        stop.set()
        started = time.monotonic()
        supervisor.join(5)
        assert not supervisor.is_alive()
        assert time.monotonic() - started < 1  # the stop is not held up by the back-off
        stack.stop()
    assert not steady.alive()


def test_a_second_stack_on_the_same_data_dir_is_refused_until_the_first_stops(tmp_path):
    settings = load(write_config(tmp_path, RECORDED_SHOPS))
    first = Stack(tmp_path / "xsell.toml", settings)
    first.claim()
    second = Stack(tmp_path / "xsell.toml", settings)
    with pytest.raises(RuntimeError) as refused:
        second.claim()
    assert str(refused.value) == (
        f"another xsell-stream up or demo (pid {os.getpid()}) is running on "
        f"{settings.data_dir}: stop it first, or give this one another data_dir")
    first.stop()
    second.claim()
    second.stop()


def test_a_port_already_in_use_is_refused_before_anything_starts(tmp_path):
    settings = load(write_config(tmp_path, RECORDED_SHOPS))
    stack = Stack(tmp_path / "xsell.toml", settings)
    with socket.socket() as holder:
        holder.bind((settings.connector.host, settings.connector.port))
        holder.listen()
        with pytest.raises(RuntimeError) as refused:
            stack.start()
    stack.stop()
    port = settings.connector.port
    assert str(refused.value) == (
        f"port {port} on 127.0.0.1 is already in use (Address already in use): another "
        "xsell-stream or another program holds it. Stop it, or choose a free port with "
        "[connector].port in the config (--port for demo)")
    assert stack.children == []


def test_the_worker_keeps_its_faust_state_under_the_data_dir(tmp_path):
    """Not in the working directory: a container's user may not write there (the image's
    /app), and a checkout would collect `<group>-data/` folders."""
    from xsell_stream.worker import make_app

    settings = load(write_config(tmp_path, RECORDED_SHOPS, kafka="127.0.0.1:9"))
    assert Path(make_app(settings).conf.datadir) == tmp_path / ".xsell" / "faust"
