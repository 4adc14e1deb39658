"""Helpers for the issue-3 tests: apply canonical events through the real Lua scripts on the
real Redis fixture, and read the figures the way `report` does."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import date
from typing import Any

import redis
import redis.asyncio as aredis

from xsell_stream.config import Settings, ShopSettings
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
