"""A real Apache Kafka broker for the tests: single node, KRaft (broker and controller in one
process), run on the machine's JDK from the broker artifacts on Maven Central.

The jars (org.apache.kafka:kafka_2.13 and its runtime dependencies) are fetched once with
Maven into build/apache-kafka/<version>/libs (gitignored) and reused after that. The broker's
data lives in a folder of the caller's, so a stop and start keeps every record, as a real
broker does.

    python -m tests.apache_kafka fetch      # only fetch the jars (CI does it up front)
    python -m tests.apache_kafka run        # start one and wait; Ctrl-C stops it

The test session starts one itself when XSELL_TEST_KAFKA=apache (see tests/conftest.py) and
exports its address as KAFKA_BOOTSTRAP_SERVERS, so every broker-backed test runs against it.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.ports import free_port

VERSION = os.environ.get("XSELL_APACHE_KAFKA_VERSION", "4.1.1")
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "apache-kafka"

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.xsell-stream</groupId>
  <artifactId>apache-kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""

_RUNNING: ApacheKafka | None = None


def fetch(version: str = VERSION) -> Path:
    """The folder of the broker's jars, fetched with Maven unless already cached."""
    home = CACHE / version
    libs = home / "libs"
    if (home / ".complete").exists():
        return libs
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise RuntimeError("Apache Kafka needs Maven (mvn) and a JDK 17+ (java) on PATH")
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(POM.format(version=version))
    if libs.exists():
        shutil.rmtree(libs)
    done = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(home / "pom.xml"), "dependency:copy-dependencies",
         f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
        capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not any(libs.glob(f"kafka_2.13-{version}.jar")):
        raise RuntimeError(f"Maven could not fetch Apache Kafka {version}:\n"
                           f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    (home / ".complete").write_text(version + "\n")
    return libs


class ApacheKafka:
    """One KRaft node on loopback; `stop()` and `start()` keep its data."""

    def __init__(self, data_dir: Path, version: str = VERSION) -> None:
        self.version = version
        self.libs = fetch(version)
        self.data_dir = data_dir
        self.port = free_port()
        self.controller_port = free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        self.log_path = data_dir / "kafka.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._configure()

    @property
    def kind(self) -> str:
        return f"Apache Kafka {self.version} (KRaft, single node) at {self.bootstrap_servers}"

    def _java(self, main: str, *args: str) -> list[str]:
        return ["java", "-Xms256m", "-Xmx768m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
                "-cp", f"{self.libs}/*", main, *args]

    def _configure(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (f"PLAINTEXT://127.0.0.1:{self.port},"
                          f"CONTROLLER://127.0.0.1:{self.controller_port}"),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        self.properties = self.data_dir / "server.properties"
        self.properties.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        # Kafka's own Uuid.randomUuid() redraws ids that start with "-": the storage tool's
        # argument parser would take one for an option (1 run in 64 failed here).
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        done = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id,
                       "-c", str(self.properties)),
            capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"kafka-storage format failed:\n{done.stdout}{done.stderr}")

    def start(self, wait_seconds: float = 120.0) -> None:
        out = self.log_path.open("ab")
        self.process = subprocess.Popen(self._java("kafka.Kafka", str(self.properties)),
                                        stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        out.close()
        self._wait_ready(wait_seconds)

    def _wait_ready(self, seconds: float) -> None:
        from kafka.admin import KafkaAdminClient

        deadline = time.monotonic() + seconds
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"Apache Kafka exited while starting; see {self.log_path}")
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers,
                                         request_timeout_ms=5000)
                try:
                    admin.describe_cluster()
                    return
                finally:
                    admin.close()
            except Exception as exc:  # noqa: BLE001 - not ready yet
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Apache Kafka did not come up in {seconds}s ({exc}); "
                                       f"see {self.log_path}") from exc
                time.sleep(0.5)

    def stop(self, timeout: float = 60.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def launch(data_dir: Path) -> ApacheKafka:
    """Starts the session's broker; `running()` hands it to tests that stop and start it."""
    global _RUNNING
    broker = ApacheKafka(data_dir)
    broker.start()
    _RUNNING = broker
    return broker


def running() -> ApacheKafka | None:
    return _RUNNING


def shutdown() -> None:
    global _RUNNING
    if _RUNNING is not None:
        _RUNNING.stop()
        _RUNNING = None


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "run"
    if command == "fetch":
        print(f"Apache Kafka {VERSION} jars in {fetch()}")
        return 0
    if command == "run":
        broker = launch(Path(tempfile.mkdtemp(prefix="apache-kafka-")))
        print(f"running: {broker.kind}; Ctrl-C stops it", flush=True)
        try:
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        finally:
            shutdown()
        return 0
    print("usage: python -m tests.apache_kafka [fetch|run]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
