"""Issue 3: the trailing windows 7d, 30d, 90d and 365d ending today, as gauges, each equal to
what `report --period <window> --date <today>` gives (same metric names, label period)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from prometheus_client import CollectorRegistry

from xsell_stream.events import OrderState
from xsell_stream.exporter import GAUGES, MONEY, FiguresCollector
from xsell_stream.store import AggregateReader

from .store_harness import apply_all, figures, settings_for

SHOP = "windows.example"
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)  # 10:00 on 1 March 2025 in Berlin


def order(n: int, days_ago: int, customer: str | None, total: str,
          products: tuple[str, ...] = ("p",)) -> OrderState:
    at = NOW - timedelta(days=days_ago)
    return OrderState(shop=SHOP, platform="woocommerce", delivery_id=f"d{n}", topic="x",
                      order_id=str(n), updated_at=at, created_at=at, counts=True,
                      customer_key=customer, currency="EUR", total=Decimal(total),
                      product_ids=products)


def test_window_gauges_end_today_and_match_the_report(redis_url, redis_client):
    settings = settings_for(SHOP, "woocommerce", "Europe/Berlin", lifespan_years=2)
    apply_all(redis_url, [
        order(1, 0, "id:1", "10.00"),             # today
        order(2, 6, "id:1", "20.00", ("q",)),     # 7th day back: inside 7d
        order(3, 7, "id:2", "40.00"),             # 8th day back: outside 7d
        order(4, 29, None, "5.00"),               # inside 30d
        order(5, 89, "id:3", "7.00"),             # inside 90d
        order(6, 364, "id:4", "100.00"),          # first day of the 365d window
        order(7, 365, "id:5", "999.00"),          # outside every window
    ], settings)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FiguresCollector(settings, AggregateReader(redis_client), now=lambda: NOW))

    def sample(name: str, period: str) -> float | None:
        labels = {"shop": SHOP, "platform": "woocommerce", "period": period}
        if GAUGES[name][0] in MONEY:
            labels["currency"] = "EUR"
        return registry.get_sample_value(name, labels)

    expected_orders = {"7d": 2, "30d": 4, "90d": 5, "365d": 6}
    for window, orders in expected_orders.items():
        assert sample("xsell_orders", window) == orders, window
        report = figures(redis_client, settings, SHOP, window, date(2025, 3, 1))
        assert report["orders"] == orders
        for name, (figure, _) in GAUGES.items():
            value = report[figure]
            assert sample(name, window) == (None if value is None else float(value)), (
                window, name)
    assert sample("xsell_revenue", "7d") == 30.0
    assert sample("xsell_repeat_customers", "7d") == 1
    assert sample("xsell_multi_product_customers", "7d") == 1   # id:1: p today, q 6 days ago
    assert sample("xsell_revenue", "365d") == 182.0
    # CLV of every window is the 365 days ending today: 177.00 named / 4 customers x 2.
    assert sample("xsell_customer_lifetime_value", "7d") == 88.5


def test_the_first_orders_show_at_the_next_scrape_though_an_empty_store_was_scraped(
        redis_url, redis_client):
    # `up` probes /metrics while the store is still empty: that must not hide CLV and the
    # 365d gauges for clv_cache_seconds once the first orders are in.
    settings = settings_for(SHOP, "woocommerce", "Europe/Berlin", lifespan_years=2)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FiguresCollector(settings, AggregateReader(redis_client), now=lambda: NOW))
    labels = {"shop": SHOP, "platform": "woocommerce", "period": "month", "currency": "EUR"}
    assert registry.get_sample_value("xsell_customer_lifetime_value", labels) is None
    apply_all(redis_url, [order(1, 0, "id:1", "10.00")], settings)
    assert registry.get_sample_value("xsell_customer_lifetime_value", labels) == 20.0
    assert registry.get_sample_value(
        "xsell_orders", {"shop": SHOP, "platform": "woocommerce", "period": "365d"}) == 1
