"""The Faust app: one agent that applies each event to Redis. Thin: the work is in store/.

At-least-once: Faust commits an offset only after the agent has moved past the event, and
the Redis side is idempotent, so a crash between apply and commit re-applies harmlessly.
Concurrency stays 1 per partition so events of one order are applied in their Kafka order
(the scripts do not need that order, but the pending bookkeeping reads more naturally).
"""

from __future__ import annotations

import asyncio
import logging

import faust
import redis.asyncio as aredis
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import events
from .broker import ensure_topics
from .config import Settings
from .store import EventApplier

log = logging.getLogger("xsell_stream.worker")

REDIS_RETRY_SECONDS = 1.0


def make_app(settings: Settings) -> faust.App:
    kafka = settings.kafka_settings
    app = faust.App(
        kafka.consumer_group,
        broker=f"kafka://{kafka.bootstrap_servers}",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        topic_partitions=kafka.partitions,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        # A worker that died (kill -9, OOM, power) holds its partitions until the broker
        # gives up on its session; 60s (Faust's default) stalls the whole shop that long
        # after every crash. Heartbeats come from a background task, so a slow event does
        # not trip this.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=20.0,
    )
    source = app.topic(kafka.topic, key_serializer="raw", value_serializer="raw",
                       partitions=kafka.partitions)
    dead_letters = app.topic(kafka.dead_letter_topic, key_serializer="raw",
                             value_serializer="raw")
    client = aredis.Redis.from_url(settings.redis_url)
    applier = EventApplier(client)

    async def dead_letter(raw: bytes, shop: str, reason: str) -> None:
        log.error("dead letter (%s): %s", shop, reason)
        await dead_letters.send(value=raw, headers={"reason": reason.encode()})
        await applier.count_dead_letter(shop)

    @app.agent(source, concurrency=1)
    async def apply_events(stream: faust.StreamT[bytes]) -> None:
        async for raw in stream:
            try:
                event = events.decode(raw)
            except ValidationError as exc:
                await dead_letter(raw, "unknown", f"not a valid event: {exc.errors()[:1]}")
                continue
            shop = settings.shop(event.shop)
            if shop is None:
                await dead_letter(raw, "unknown", f"shop {event.shop!r} is not configured")
                continue
            while True:
                try:
                    await applier.apply(event, shop.zone)
                    break
                except ResponseError as exc:
                    await dead_letter(raw, event.shop, f"Redis refused the event: {exc}")
                    break
                except (RedisConnectionError, RedisTimeoutError) as exc:
                    # Never skip an event: wait for Redis, the offset stays uncommitted.
                    log.warning("Redis unavailable (%s); retrying in %.0fs", exc,
                                REDIS_RETRY_SECONDS)
                    await asyncio.sleep(REDIS_RETRY_SECONDS)

    return app


def run(settings: Settings) -> None:
    ensure_topics(settings.kafka_settings, wait_seconds=60.0)
    app = make_app(settings)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
