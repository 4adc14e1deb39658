"""What the fault and bad-input tests share: a stack on the selected broker, its processes,
a replay of the committed sample in the background, and an exact snapshot of the figures.

The broker: KAFKA_BOOTSTRAP_SERVERS (a real Apache Kafka, see tests/apache_kafka.py) when
set, else the embedded Tansu broker that `xsell-stream up` starts itself.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.conftest import RECORDED_SHOPS, RunningStack, start_stack, stop_stack, write_config
from xsell_stream.demo import sample_path
from xsell_stream.replay import read_deliveries, replay
from xsell_stream.store import AggregateReader, prefix

SAMPLE_DELIVERIES = 1843
# ~31 s for the sample: four kills of one process, with `up`'s back-off of 1 + 2 + 4 s
# before the restarts, all land well inside it.
REPLAY_RATE = 60.0


def external_kafka() -> str | None:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None


def broker_kind() -> str:
    named = external_kafka()
    return f"external Kafka at {named}" if named else "embedded Tansu broker started by `up`"


def configure(directory: Path, connector: dict[str, object] | None = None,
              shops: list[dict[str, object]] = RECORDED_SHOPS) -> Path:
    """A stack config on the selected broker, with extra [connector] settings."""
    directory.mkdir(parents=True, exist_ok=True)
    path = write_config(directory, shops, kafka=external_kafka())
    extra = "".join(f"{k} = {v!r}\n" for k, v in (connector or {}).items())
    path.write_text(path.read_text().replace("[connector]\n", "[connector]\n" + extra, 1))
    return path


def start(directory: Path, connector: dict[str, object] | None = None,
          shops: list[dict[str, object]] = RECORDED_SHOPS) -> RunningStack:
    print(f"[broker: {broker_kind()}]")
    return start_stack(configure(directory, connector, shops))


def stop(stack: RunningStack) -> None:
    if stack.process.poll() is None:
        stop_stack(stack)


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def process_of(stack: RunningStack, name: str) -> int | None:
    """The pid of one of `up`'s children: worker, connector, exporter, redis or broker."""
    for pid in children(stack.process.pid):
        argv = cmdline(pid)
        if not argv:
            continue
        if name == "redis" and "redis-server" in argv[0]:
            return pid
        if name == "broker" and "tansu" in argv[0]:
            return pid
        if "xsell_stream.cli" in argv and name in argv:
            return pid
    return None


def wait_for_new(stack: RunningStack, name: str, old: int | None, seconds: float = 90) -> int:
    """Waits until `up` has restarted `name` (a live pid other than `old`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pid = process_of(stack, name)
        if pid is not None and pid != old:
            return pid
        time.sleep(0.1)
    raise AssertionError(f"`up` did not restart the {name} within {seconds}s")


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


@dataclass
class BackgroundReplay:
    """The committed sample posted by the real replayer (retrying 5xx and no answer, as a
    store would), on a thread so the test can break things meanwhile."""

    url: str
    retries: int = 12
    # Deliveries a second; 0 is as fast as the connector answers. The kill tests pace the
    # replay (REPLAY_RATE) so that every kill, and `up`'s growing back-off before each
    # restart, falls while deliveries still arrive.
    rate: float = 0.0
    statuses: Counter[int | str] = field(default_factory=Counter)
    error: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self) -> BackgroundReplay:
        def run() -> None:
            try:
                self.statuses = asyncio.run(
                    replay(read_deliveries(sample_path()), self.url, concurrency=8,
                           retries=self.retries, rate=self.rate))
            except BaseException as exc:  # noqa: BLE001 - reported by wait()
                self.error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, seconds: float = 900) -> Counter[int | str]:
        assert self._thread is not None
        self._thread.join(seconds)
        assert not self._thread.is_alive(), f"the replay did not finish in {seconds}s"
        if self.error is not None:
            raise self.error
        return self.statuses


def replay_sample(url: str, retries: int = 12) -> Counter[int | str]:
    return BackgroundReplay(url, retries).start().wait()


def redis_of(stack: RunningStack) -> redis.Redis:
    return redis.Redis.from_url(stack.settings.redis_url, socket_timeout=10)


def pending(stack: RunningStack, client: redis.Redis | None = None) -> int:
    """Accepted deliveries of every shop not yet applied (the exporter's own read)."""
    reader = AggregateReader(client or redis_of(stack))
    return sum(reader.pending(s.id) for s in stack.settings.shops)


def settle(stack: RunningStack, seconds: float = 300) -> None:
    """Waits until no accepted delivery is still unapplied; fails if that never happens."""
    client = redis_of(stack)
    started = time.monotonic()
    deadline = started + seconds
    left = -1
    while time.monotonic() < deadline:
        try:
            left = pending(stack, client)
            if left == 0:
                print(f"[settled in {time.monotonic() - started:.1f}s]")
                return
        except redis.RedisError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{left} accepted deliveries still unapplied after {seconds}s")


def snapshot(stack: RunningStack) -> dict[str, dict[str, dict[bytes, bytes]]]:
    """Every aggregate of every shop, exactly: each bucket hash and its per-customer hashes
    (orders, revenue, customers, repeat, multi-product, ...), keyed without the shop prefix."""
    client = redis_of(stack)
    out: dict[str, dict[str, dict[bytes, bytes]]] = {}
    for shop in stack.settings.shops:
        p = prefix(shop.id)
        keys = sorted(k.decode() for k in client.scan_iter(match=f"{p}b:*", count=1000))
        out[shop.id] = {k[len(p):]: client.hgetall(k) for k in keys}
    return out


def summary(snap: dict[str, dict[str, dict[bytes, bytes]]]) -> str:
    """One line per shop for the test's output: orders and revenue summed over its months."""
    lines = []
    for shop, buckets in snap.items():
        months = {k: v for k, v in buckets.items() if re.fullmatch(r"b:month:\d{4}-\d{2}", k)}
        orders = sum(int(v.get(b"orders", 0)) for v in months.values())
        revenue = sum(int(v.get(b"revenue", 0)) for v in months.values()) / 10_000
        lines.append(f"{shop}: {len(buckets)} aggregate hashes, {len(months)} months, "
                     f"{orders} orders, revenue {revenue:.2f}")
    return "; ".join(lines)
