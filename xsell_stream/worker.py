"""The Faust app: one agent that applies each event to Redis. Thin: the work is in store/.

At-least-once: Faust commits an offset only after the agent has moved past the event, and
the Redis side is idempotent, so a crash between apply and commit re-applies harmlessly.
Concurrency stays 1 per partition so events of one order are applied in their Kafka order
(the scripts do not need that order, but the pending bookkeeping reads more naturally).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

import faust
import redis.asyncio as aredis
from pydantic import ValidationError
from redis.exceptions import (
    ClusterDownError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import events
from .broker import ensure_topics
from .config import Settings
from .store import EventApplier

log = logging.getLogger("xsell_stream.worker")

REDIS_RETRY_SECONDS = 1.0
REDIS_RETRY_MAX_SECONDS = 30.0
T = TypeVar("T")

# Refusals that say the server cannot take writes now, not that the event is wrong. Redis
# 6 wraps an error met inside a script ("Error running script ... -OOM command not
# allowed ..."), so the code is looked for anywhere in the message.
_TRANSIENT_CLASSES = (RedisConnectionError, RedisTimeoutError, OutOfMemoryError, ReadOnlyError,
                      NoPermissionError, TryAgainError, ClusterDownError)
_TRANSIENT_CODES = re.compile(
    r"(?<![A-Za-z])-?(OOM|READONLY|BUSY|LOADING|MISCONF|NOPERM|NOAUTH|WRONGPASS|MASTERDOWN"
    r"|TRYAGAIN|CLUSTERDOWN)(?![A-Za-z])")
_WHAT_TO_DO = {
    "OOM": "Redis is at its maxmemory: raise maxmemory or give it more memory",
    "READONLY": "[redis].url points at a read-only replica: point it at the primary",
    "MISCONF": "Redis cannot persist (disk full?): see the Redis log",
    "LOADING": "Redis is loading its data set: wait for it",
    "BUSY": "a long-running script or command holds Redis: see its SLOWLOG",
    "NOPERM": "the Redis user may not run these commands: check its ACL",
    "NOAUTH": "check the user and password in [redis].url",
    "WRONGPASS": "check the user and password in [redis].url",
}


def redis_is_refusing_for_now(exc: RedisError) -> bool:
    """True when the error is the server's state (down, full, read-only, loading, busy);
    False when Redis refused this very event, which no retry would change."""
    return isinstance(exc, _TRANSIENT_CLASSES) or _TRANSIENT_CODES.search(str(exc)) is not None


def _advice(exc: RedisError) -> str:
    found = _TRANSIENT_CODES.search(str(exc))
    return _WHAT_TO_DO.get(found.group(1) if found else "", "check that Redis runs and answers")


async def until_redis_takes(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, retried with a growing pause for as long as Redis refuses for now: the
    offset stays uncommitted and no event is ever skipped. Other refusals are raised."""
    pause = REDIS_RETRY_SECONDS
    while True:
        try:
            return await call()
        except RedisError as exc:
            if not redis_is_refusing_for_now(exc):
                raise
            log.warning("Redis cannot take %s now (%s: %s); %s. Retrying in %.0fs; nothing "
                        "is skipped meanwhile", what, type(exc).__name__, str(exc)[:200],
                        _advice(exc), pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, REDIS_RETRY_MAX_SECONDS)


def make_app(settings: Settings) -> faust.App:
    kafka = settings.kafka_settings
    app = faust.App(
        kafka.consumer_group,
        broker=f"kafka://{kafka.bootstrap_servers}",
        store="memory://",
        # Faust keeps its own state under the data dir, not in the working directory (which
        # a container's non-root user may not write, and a checkout should not collect).
        datadir=str(settings.data_dir / "faust"),
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
        # Wait for the broker's acknowledgement, not just the send buffer: the offset of the
        # poison event may be committed as soon as this returns.
        acknowledged = await dead_letters.send(value=raw, headers={"reason": reason.encode()})
        await acknowledged
        await until_redis_takes("a dead-letter count", partial(applier.count_dead_letter, shop))

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
            try:
                await until_redis_takes("an event", partial(applier.apply, event, shop.zone))
            except ResponseError as exc:
                await dead_letter(raw, event.shop, f"Redis refused the event: {exc}")

    return app


def run(settings: Settings) -> None:
    ensure_topics(settings.kafka_settings, wait_seconds=60.0)
    app = make_app(settings)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
