"""The exporter's gauges, read from a real Redis at scrape time, asserted sample by sample."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import redis
import redis.asyncio as aredis
from prometheus_client import CollectorRegistry

from xsell_stream import config as config_module
from xsell_stream.events import OrderState
from xsell_stream.exporter import FiguresCollector
from xsell_stream.store import AggregateReader, EventApplier

from .conftest import write_config

SHOP = "gauges.example"


def order(order_id: str, customer: str | None, total: str, products: tuple[str, ...],
          day: int) -> OrderState:
    at = datetime(2024, 5, day, 12, 0, tzinfo=UTC)
    return OrderState(shop=SHOP, platform="woocommerce", delivery_id=f"d-{order_id}",
                      topic="order.created", order_id=order_id, updated_at=at, created_at=at,
                      counts=True, customer_key=customer, currency="EUR", total=Decimal(total),
                      product_ids=products)


def scrape(tmp_path: Path, redis_url: str, orders: list[OrderState], now: datetime):  # type: ignore[no-untyped-def]
    shops = [{"id": SHOP, "platform": "woocommerce", "timezone": "Europe/Berlin",
              "lifespan_years": 2, "secrets": ["s"]}]
    settings = config_module.load(write_config(tmp_path, shops, redis_url=redis_url))

    async def apply() -> None:
        client = aredis.Redis.from_url(redis_url)
        applier = EventApplier(client)
        for o in orders:
            await applier.apply(o, settings.shops[0].zone)
        await client.aclose()

    asyncio.run(apply())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FiguresCollector(settings, AggregateReader(redis.Redis.from_url(redis_url)),
                                       now=lambda: now))
    return registry


def test_gauges_for_the_current_periods(tmp_path, redis_url, redis_client):
    orders = [
        order("1", "id:1", "10.00", ("a", "b"), 6),   # Monday of ISO week 19
        order("2", "id:1", "20.00", ("a",), 8),
        order("3", "id:2", "30.50", ("c",), 8),
        order("4", None, "100.00", ("a", "b"), 8),     # anonymous: orders and revenue only
        order("5", "id:3", "5.00", ("c",), 1),         # same month, earlier week
    ]
    registry = scrape(tmp_path, redis_url, orders, now=datetime(2024, 5, 8, 15, tzinfo=UTC))

    def value(name: str, period: str, money: bool = False) -> float | None:
        labels = {"shop": SHOP, "platform": "woocommerce", "period": period}
        if money:
            labels["currency"] = "EUR"
        return registry.get_sample_value(name, labels)

    assert value("xsell_orders", "day") == 3
    assert value("xsell_orders", "week") == 4
    assert value("xsell_orders", "month") == 5
    assert value("xsell_revenue", "day", money=True) == 150.5
    assert value("xsell_revenue", "month", money=True) == 165.5
    assert value("xsell_customers", "week") == 2
    assert value("xsell_repeat_customers", "week") == 1
    assert value("xsell_repeat_purchase_ratio", "week") == 0.5
    assert value("xsell_multi_product_customers", "day") == 0   # id:1 bought only "a" that day
    assert value("xsell_multi_product_customers", "week") == 1  # id:1: a, b over the week
    assert value("xsell_cross_sell_ratio", "month") == 1 / 3
    assert value("xsell_average_order_value", "month", money=True) == 33.1
    assert value("xsell_revenue_per_customer", "month", money=True) == 21.83  # 65.50 / 3
    # 365 days ending 2024-05-31: 65.50 named revenue / 3 customers x 2 years = 43.67
    assert value("xsell_customer_lifetime_value", "month", money=True) == 43.67
    # No offers: the counts are exported as 0, the undefined ratio has no sample.
    assert value("xsell_upsell_offered_customers", "month") == 0
    assert value("xsell_upsell_conversion_ratio", "month") is None
    assert registry.get_sample_value("xsell_redis_up", {}) == 1
    assert registry.get_sample_value("xsell_events_total",
                                     {"shop": SHOP, "outcome": "applied"}) == 5
    assert registry.get_sample_value("xsell_dead_letters_total", {"shop": SHOP}) == 0


def test_an_empty_shop_has_counts_but_no_ratios(tmp_path, redis_url, redis_client):
    registry = scrape(tmp_path, redis_url, [], now=datetime(2024, 5, 8, tzinfo=UTC))
    labels = {"shop": SHOP, "platform": "woocommerce", "period": "year"}
    assert registry.get_sample_value("xsell_orders", labels) == 0
    assert registry.get_sample_value("xsell_repeat_purchase_ratio", labels) is None
    assert registry.get_sample_value("xsell_average_order_value",
                                     {**labels, "currency": ""}) is None
