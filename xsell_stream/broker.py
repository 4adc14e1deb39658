"""Kafka topics the pipeline needs, created up front with the configured partitions."""

from __future__ import annotations

import logging
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from .config import KafkaSettings

log = logging.getLogger(__name__)


def ensure_topics(kafka: KafkaSettings, wait_seconds: float = 30.0) -> None:
    """Create the event and dead-letter topics unless they exist, waiting for the broker."""
    deadline = time.monotonic() + wait_seconds
    # While the broker is still starting, kafka-python logs every refused connection as an
    # ERROR; waiting for it is expected, so only the final failure is reported.
    client_log = logging.getLogger("kafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        while True:
            try:
                admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers,
                                         client_id="xsell-stream-admin",
                                         request_timeout_ms=10000)
                break
            except KafkaError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Kafka at {kafka.bootstrap_servers} is unreachable ({exc}); "
                        "start the broker or fix [kafka].bootstrap_servers"
                    ) from exc
                time.sleep(0.5)
    finally:
        client_log.setLevel(level)
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(kafka.topic, kafka.partitions, 1),
            NewTopic(kafka.dead_letter_topic, 1, 1),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
                log.info("created topics %s", ", ".join(t.name for t in missing))
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
