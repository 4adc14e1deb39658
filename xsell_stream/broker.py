"""Kafka topics the pipeline needs, created up front with the configured partitions, and the
hand-over again of accepted events a broker lost."""

from __future__ import annotations

import logging
import time

import redis
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from . import events
from .config import KafkaSettings, Settings
from .store import unapplied_events

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


def redeliver_unapplied(settings: Settings) -> int:
    """Produces again every accepted event not yet applied (kept in Redis by the connector).
    For a broker that lost what it had acknowledged: the embedded one keeps nothing across a
    restart, and the stores never retry a delivery that was answered 200. An event that the
    broker still had is then applied twice, which changes nothing (the scripts are
    idempotent). Returns how many were produced."""
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
    try:
        waiting = [raw for shop in settings.shops for raw in unapplied_events(client, shop.id)]
    finally:
        client.close()
    if not waiting:
        return 0
    kafka = settings.kafka_settings
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all",
                             enable_idempotence=True, client_id="xsell-stream-redeliver")
    try:
        sent = [producer.send(kafka.topic, key=events.partition_key(events.decode(raw)),
                              value=raw) for raw in waiting]
        for future in sent:
            future.get(timeout=60)  # raises unless the broker acknowledged
    finally:
        producer.close(timeout=10)
    log.warning("handed %d accepted, not yet applied events to the broker again", len(waiting))
    return len(waiting)
