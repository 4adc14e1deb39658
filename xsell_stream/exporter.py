"""The Prometheus collector: reads Redis at scrape time and keeps no figures of its own.

Gauges carry `shop`, `platform` and `period` (the current calendar day, week, month, quarter
and year in the shop's zone, and the trailing windows 7d, 30d, 90d and 365d ending today),
and `currency` on money. No customer data is ever a label.
An undefined ratio or average has no sample; the counts behind it are still exported.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import redis
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .config import Settings, ShopSettings
from .lag import ConsumerLag
from .metrics import Counts, figures
from .periods import CALENDAR_PERIODS, WINDOWS, calendar_span, clv_span, local_date, span
from .store import AggregateReader

log = logging.getLogger("xsell_stream.exporter")

# metric name -> (figure name, help); money gauges get the `currency` label.
GAUGES: dict[str, tuple[str, str]] = {
    "xsell_orders": ("orders", "Orders that count, created in the period"),
    "xsell_customers": ("customers", "Distinct customers with an order in the period"),
    "xsell_repeat_customers": ("repeat_customers", "Customers with two or more orders"),
    "xsell_multi_product_customers": (
        "multi_product_customers", "Customers whose orders hold two or more distinct products"),
    "xsell_upsell_offered_customers": (
        "upsell_offered_customers", "Customers presented at least one upsell offer"),
    "xsell_upsell_accepted_customers": (
        "upsell_accepted_customers", "Customers who accepted at least one upsell offer"),
    "xsell_revenue": ("revenue", "Revenue of the period's orders, net of refunds"),
    "xsell_average_order_value": ("average_order_value", "Revenue / orders"),
    "xsell_revenue_per_customer": (
        "revenue_per_customer", "Revenue of non-anonymous orders / customers"),
    "xsell_customer_lifetime_value": (
        "customer_lifetime_value",
        "Non-anonymous revenue / customers over the 365 days ending on the period's last "
        "day, times the shop's lifespan"),
    "xsell_repeat_purchase_ratio": ("repeat_purchase_rate", "Repeat customers / customers"),
    "xsell_cross_sell_ratio": ("cross_sell_ratio", "Multi-product customers / customers"),
    "xsell_upsell_conversion_ratio": (
        "upsell_conversion_rate", "Upsell accepted customers / offered customers"),
}
MONEY = frozenset({"revenue", "average_order_value", "revenue_per_customer",
                   "customer_lifetime_value"})


class FiguresCollector(Collector):
    def __init__(
        self,
        settings: Settings,
        reader: AggregateReader,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        lag: ConsumerLag | None = None,
    ) -> None:
        self._settings = settings
        self._reader = reader
        self._now = now
        self._lag = lag
        self._clv_cache: dict[tuple[str, date], tuple[float, Counts]] = {}
        self._lock = threading.Lock()

    def _clv_counts(self, shop: ShopSettings, end: date) -> Counts:
        """The 365-day union is the costly read; it is cached for clv_cache_seconds."""
        key = (shop.id, end)
        ttl = self._settings.exporter.clv_cache_seconds
        with self._lock:
            hit = self._clv_cache.get(key)
            if hit and time.monotonic() - hit[0] < ttl:
                return hit[1]
        span = clv_span(calendar_span("day", end))
        counts = self._reader.days(shop.id, span.days())
        if counts.orders:  # an empty union is cheap, and caching it would hide the first orders
            with self._lock:
                self._clv_cache[key] = (time.monotonic(), counts)
        return counts

    def collect(self) -> Iterator[Metric]:
        yield from self._consumer_lag()
        up = GaugeMetricFamily("xsell_redis_up", "1 when the exporter could read Redis")
        try:
            families = list(self._figures()) + list(self._pipeline())
        except redis.RedisError as exc:
            log.warning("scrape without figures: Redis unavailable (%s)", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _figures(self) -> Iterator[Metric]:
        families = {
            name: GaugeMetricFamily(
                name, help_text,
                labels=["shop", "platform", "period", *(["currency"] if fig in MONEY else [])],
            )
            for name, (fig, help_text) in GAUGES.items()
        }
        now = self._now()
        for shop in self._settings.shops:
            today = local_date(now, shop.zone)
            currency = shop.currency or self._reader.currency(shop.id) or ""
            lifespan = Decimal(str(shop.lifespan_years))
            for period in (*CALENDAR_PERIODS, *WINDOWS):
                the_span = span(period, today)
                clv_counts = self._clv_counts(shop, the_span.end)
                # The 365-day window is the CLV window ending today: one read serves both.
                counts = (clv_counts if the_span == clv_span(the_span)
                          else self._reader.span(shop.id, the_span))
                values = figures(counts, clv_counts, lifespan)
                for name, (fig, _) in GAUGES.items():
                    value = values[fig]
                    if value is None:
                        continue
                    labels = [shop.id, shop.platform, period]
                    if fig in MONEY:
                        labels.append(currency)
                    families[name].add_metric(labels, float(value))  # type: ignore[arg-type]
        yield from families.values()

    def _consumer_lag(self) -> Iterator[Metric]:
        if self._lag is None:
            return
        reading = self._lag.latest()
        up = GaugeMetricFamily(
            "xsell_kafka_up", "1 when the exporter read the worker's consumer lag from Kafka "
            "in the last three lag intervals")
        up.add_metric([], 0 if reading is None else 1)
        yield up
        lag = GaugeMetricFamily(
            "xsell_consumer_lag_events",
            "Events in the event topic the worker's consumer group has not committed yet",
            labels=["partition"])
        for partition, behind in sorted((reading.partitions if reading else {}).items()):
            lag.add_metric([str(partition)], behind)
        yield lag

    def _pipeline(self) -> Iterator[Metric]:
        webhooks = CounterMetricFamily(
            "xsell_webhooks", "Webhook deliveries received, by outcome",
            labels=["platform", "shop", "outcome"])
        for (platform, shop, outcome), n in sorted(self._reader.webhooks().items()):
            webhooks.add_metric([platform, shop, outcome], n)
        yield webhooks
        applied = CounterMetricFamily(
            "xsell_events", "Events processed by the worker, by outcome",
            labels=["shop", "outcome"])
        pending = GaugeMetricFamily(
            "xsell_pending_deliveries", "Deliveries accepted but not yet applied",
            labels=["shop"])
        last = GaugeMetricFamily(
            "xsell_last_event_timestamp_seconds", "When the worker last applied an event",
            labels=["shop"])
        for shop in self._settings.shops:
            stats = self._reader.stats(shop.id)
            for outcome in ("applied", "unchanged", "stale"):
                applied.add_metric([shop.id, outcome], stats.get(f"events_{outcome}", 0))
            pending.add_metric([shop.id], self._reader.pending(shop.id))
            if "last_event_unix" in stats:
                last.add_metric([shop.id], stats["last_event_unix"])
        dead = CounterMetricFamily(
            "xsell_dead_letters", "Events the worker could not apply", labels=["shop"])
        # Every configured shop has a sample (0 until its first dead letter), so rate() and
        # increase() work from the start; events of unknown shops count under "unknown".
        counted = self._reader.dead_letters()
        for shop_id in sorted({s.id for s in self._settings.shops} | set(counted)):
            dead.add_metric([shop_id], counted.get(shop_id, 0))
        yield from (applied, pending, last, dead)


def make_registry(settings: Settings, client: redis.Redis,
                  lag: ConsumerLag | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FiguresCollector(settings, AggregateReader(client), lag=lag))
    return registry


def run(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    # The lag probe says in one line when Kafka cannot be read, and again when it can; the
    # client library would log every failed reconnect of every probe.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    lag = ConsumerLag(settings.kafka_settings, settings.exporter.lag_interval_seconds).start()
    server, thread = start_http_server(settings.exporter.port, settings.exporter.host,
                                       registry=make_registry(settings, client, lag))
    log.info("exporter on http://%s:%d/metrics", settings.exporter.host, settings.exporter.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    lag.stop()
    server.shutdown()
    thread.join(timeout=5)
