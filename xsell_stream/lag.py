"""Consumer lag: events in the event topic that the worker's consumer group has not committed.

Read by the exporter in a background thread every `interval` seconds (never at scrape time:
a broker that does not answer must not stall a scrape), with kafka-python. A partition the
group never committed counts from the start of its log. `xsell_pending_deliveries` tells the
same story per shop and end to end (accepted, not yet in Redis); this is Kafka's own view.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from .config import KafkaSettings

log = logging.getLogger("xsell_stream.lag")


@dataclass(frozen=True)
class LagReading:
    partitions: dict[int, int]  # partition -> events not yet committed
    at: float  # time.monotonic() of the reading


class ConsumerLag:
    def __init__(self, kafka: KafkaSettings, interval: float = 15.0) -> None:
        self._kafka = kafka
        self.interval = interval
        self._latest: LagReading | None = None
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None
        self._stop = threading.Event()
        self._failed = False

    def read_once(self) -> LagReading:
        """One reading now (blocking); raises KafkaError when the broker cannot tell."""
        timeout_ms = int(max(self.interval, 5) * 1000)
        if self._admin is None or self._consumer is None:
            self._admin = KafkaAdminClient(bootstrap_servers=self._kafka.bootstrap_servers,
                                           client_id="xsell-exporter-lag",
                                           request_timeout_ms=timeout_ms)
            self._consumer = KafkaConsumer(bootstrap_servers=self._kafka.bootstrap_servers,
                                           client_id="xsell-exporter-lag", group_id=None,
                                           request_timeout_ms=timeout_ms + 1000)
        topic = self._kafka.topic
        known = self._consumer.partitions_for_topic(topic)
        if not known:
            raise KafkaError(f"topic {topic!r} has no partitions yet")
        parts = [TopicPartition(topic, p) for p in sorted(known)]
        ends = self._consumer.end_offsets(parts)
        starts = self._consumer.beginning_offsets(parts)
        group = self._kafka.consumer_group
        committed = self._admin.list_group_offsets({group: parts}).get(group, {})
        lag = {}
        for tp in parts:
            done = committed.get(tp)
            position = done.offset if done is not None and done.offset >= 0 else starts[tp]
            lag[tp.partition] = max(0, ends[tp] - max(position, starts[tp]))
        reading = LagReading(lag, time.monotonic())
        self._latest = reading
        return reading

    def latest(self) -> LagReading | None:
        """The last reading, if it is recent (three intervals); None when Kafka is not
        answering, so the gauge goes missing rather than stale."""
        reading = self._latest
        if reading is None or time.monotonic() - reading.at > 3 * self.interval:
            return None
        return reading

    def _close(self) -> None:
        for client in (self._admin, self._consumer):
            try:
                if client is not None:
                    client.close()
            except Exception:  # noqa: BLE001 - closing a broken client
                pass
        self._admin = self._consumer = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.read_once()
                if self._failed:
                    log.info("consumer lag readable again")
                self._failed = False
            except Exception as exc:  # noqa: BLE001 - kafka-python raises more than KafkaError
                if not self._failed:
                    log.warning("cannot read the consumer lag from Kafka at %s (%s); "
                                "retrying every %.0fs", self._kafka.bootstrap_servers,
                                exc, self.interval)
                self._failed = True
                self._close()
            self._stop.wait(self.interval)
        self._close()

    def start(self) -> ConsumerLag:
        threading.Thread(target=self._loop, name="consumer-lag", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
