"""Helpers for the issue-3 tests: apply canonical events through the real Lua scripts on the
real Redis fixture, and read the figures the way `report` does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import date
from typing import Any

import redis
import redis.asyncio as aredis
from aiohttp.test_utils import TestClient, TestServer
from kafka import KafkaConsumer, TopicPartition

from connectors.app import make_app
from connectors.producer import EventProducer
from xsell_stream import events
from xsell_stream.broker import ensure_topics
from xsell_stream.config import KafkaSettings, RedisSettings, Settings, ShopSettings
from xsell_stream.events import Event
from xsell_stream.metrics import FIGURE_NAMES
from xsell_stream.report import figures_for
from xsell_stream.store import AggregateReader, EventApplier


def settings_for(shop: str, platform: str = "shopify", timezone: str = "UTC",
                 lifespan_years: float = 3, secret: str = "test-secret") -> Settings:
    return Settings(
        email_hash_key="test-key",
        shops=[ShopSettings(id=shop, platform=platform, timezone=timezone,  # type: ignore[arg-type]
                            lifespan_years=lifespan_years, secrets=[secret])],
    )


def apply_all(redis_url: str, events: Iterable[Event], settings: Settings) -> list[str]:
    """Applies the events in the given order with the worker's EventApplier; the outcomes."""

    async def run() -> list[str]:
        client = aredis.Redis.from_url(redis_url)
        try:
            applier = EventApplier(client)
            outcomes = []
            for event in events:
                shop = settings.shop(event.shop)
                assert shop is not None
                outcomes.append(await applier.apply(event, shop.zone))
            return outcomes
        finally:
            await client.aclose()

    return asyncio.run(run())


def figures(client: redis.Redis, settings: Settings, shop: str, period: str,
            day: date | str) -> dict[str, Any]:
    """Just the figures of METRICS.md (no shop / period / dates / currency)."""
    if isinstance(day, str):
        day = date.fromisoformat(day)
    report = figures_for(settings, AggregateReader(client), shop, period, day)
    return {name: report[name] for name in FIGURE_NAMES}


class HttpPipeline:
    """The real receiver (connectors.app.make_app) on a real broker and Redis, with a plain
    consumer standing in for the Faust worker: each accepted delivery is read back from Kafka
    and applied with EventApplier before the next one is posted, as a running worker would."""

    def __init__(self, settings: Settings, redis_url: str, bootstrap_servers: str) -> None:
        topic = f"xsell.issue3.{uuid.uuid4().hex[:12]}"
        kafka = KafkaSettings(bootstrap_servers=bootstrap_servers, topic=topic,
                              dead_letter_topic=f"{topic}.dead", partitions=1)
        self.settings = settings.model_copy(
            update={"kafka": kafka, "redis": RedisSettings(url=redis_url)})
        self.redis_url = redis_url
        ensure_topics(kafka, wait_seconds=30)
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers, group_id=None, auto_offset_reset="earliest",
            enable_auto_commit=False)
        self._consumer.assign([TopicPartition(topic, 0)])
        self._consumer.seek_to_beginning()
        self._producer = EventProducer(kafka, timeout_seconds=15)

    def post(self, deliveries: list[tuple[str, bytes, dict[str, str]]]) -> list[tuple[int, str]]:
        """POSTs each (path, raw body, headers); returns (status, response text) each."""

        async def run() -> list[tuple[int, str]]:
            client = aredis.Redis.from_url(self.redis_url)
            server = TestServer(make_app(self.settings, self._producer, client))
            answers = []
            try:
                async with TestClient(server) as http:
                    for path, body, headers in deliveries:
                        resp = await http.post(path, data=body, headers=headers)
                        answers.append((resp.status, await resp.text()))
                        if resp.status == 200 and "accepted" in answers[-1][1]:
                            await self._apply_next(client)
            finally:
                await client.aclose()
            return answers

        return asyncio.run(run())

    async def _apply_next(self, client: aredis.Redis) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            batch = await loop.run_in_executor(None, lambda: self._consumer.poll(500, 1))
            for records in batch.values():
                for record in records:
                    event = events.decode(record.value)
                    shop = self.settings.shop(event.shop)
                    assert shop is not None
                    await EventApplier(client).apply(event, shop.zone)
                    return
        raise AssertionError("an accepted delivery never reached the broker")

    def close(self) -> None:
        self._consumer.close()
        self._producer.close()
