"""Property tests (issue 3): random order histories, delivered in random order with random
duplicates, retries and late states, give exactly the figures of the independent batch
reference (tests/reference.py) for every calendar period and trailing window.

The events go through the real Lua scripts (EventApplier) on the real Redis fixture and are
read back with AggregateReader + report.figures_for, as the report command does."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xsell_stream.events import OfferEvent, OrderDeleted, OrderState, Refund, RefundIssued

from . import reference
from .store_harness import apply_all, figures, settings_for

SHOP = "prop-shop.example"
PERIODS = ("day", "week", "month", "quarter", "year", "7d", "30d", "90d", "365d")
ZONES = ("UTC", "Europe/London", "Australia/Melbourne", "America/Los_Angeles",
         "Pacific/Kiritimati")
# Near the turn of a year, a quarter, a month and an ISO week (2024-12-30 is a Monday).
BASE = datetime(2024, 12, 30, 12, 0, tzinfo=UTC)
CUSTOMERS = (None, "id:1", "id:2", "id:9007199254740993", "email:0f3c2a")
PRODUCTS = ("10", "11", "12", "9007199254740995")
HOUR = timedelta(hours=1)


def _money(cents: int) -> Decimal:
    return Decimal(cents) / 100


@st.composite
def order_history(draw: st.DrawFn, index: int) -> list[object]:
    """Every event one order produces: states (some late, some restores), refunds both as
    their own events and inside states, deletions."""
    order_id = str(draw(st.sampled_from([index + 1, 2**53 + 1 + index, 2**63 - 1 - index])))
    # -365, -90, -30 and the day after each: both sides of the first day of the 365d, 90d and
    # 30d windows ending on day 0.
    day_offset = draw(st.sampled_from([-400, -365, -364, -200, -90, -89, -45, -30, -29, -8, -3,
                                       -2, -1, 0, 1, 2, 3, 6]))
    created = BASE + timedelta(days=day_offset, minutes=draw(st.integers(-720, 720)))
    common = {"shop": SHOP, "platform": "shopify", "order_id": order_id}

    refund_pool = [
        Refund(refund_id=f"{order_id}-r{i}", amount=_money(draw(st.integers(1, 5000))))
        for i in range(draw(st.integers(0, 2)))
    ]
    events: list[object] = []
    n_states = draw(st.integers(1, 3))
    # (hour of updated_at, stage): states of one second that differ only in their stage are
    # common (a checkout creates and pays in one second), so small hours repeat often.
    moments = sorted(draw(st.lists(st.tuples(st.integers(0, 2) | st.integers(0, 200),
                                             st.integers(0, 3)),
                                   min_size=n_states, max_size=n_states, unique=True)))
    customer = draw(st.sampled_from(CUSTOMERS))
    # WooCommerce-like: each state lists all the order's refunds (a later one may have
    # dropped a refund deleted in the store), and no refund arrives on its own.
    complete = draw(st.booleans())
    for i, (h, stage) in enumerate(moments):
        if draw(st.booleans()) and i:
            customer = draw(st.sampled_from(CUSTOMERS))  # the customer can change on an edit
        restored = None
        if draw(st.integers(0, 4)) == 0:
            restored = created + timedelta(hours=h + draw(st.integers(0, 100)))
        events.append(OrderState(
            **common, delivery_id=f"{order_id}-s{i}", topic="orders/updated",
            updated_at=created + h * HOUR, created_at=created,
            counts=draw(st.integers(0, 4)) > 0, customer_key=customer, currency="GBP",
            total=_money(draw(st.integers(0, 50000))),
            refunds=tuple(draw(st.lists(st.sampled_from(refund_pool), unique=True)))
            if refund_pool else (),
            product_ids=tuple(draw(st.lists(st.sampled_from(PRODUCTS), max_size=3))),
            upsell_line_items=("7001",) if draw(st.integers(0, 3)) == 0 else (),
            restored_at=restored, stage=stage, refunds_complete=complete,
        ))
    for i, refund in enumerate(refund_pool):
        if not complete and draw(st.booleans()):
            # Sometimes first seen while its transaction was still pending: a smaller amount.
            amount = refund.amount if draw(st.booleans()) else Decimal(0)
            events.append(RefundIssued(
                **common, delivery_id=f"{order_id}-rf{i}", topic="refunds/create",
                refund=Refund(refund_id=refund.refund_id, amount=amount)))
    for i in range(draw(st.sampled_from([0, 0, 1, 2]))):
        events.append(OrderDeleted(
            **common, delivery_id=f"{order_id}-del{i}", topic="orders/delete",
            deleted_at=created + timedelta(hours=draw(st.integers(0, 250))),
            final=draw(st.booleans())))
    return events


@st.composite
def offer_events(draw: st.DrawFn) -> list[object]:
    out: list[object] = []
    for i in range(draw(st.integers(0, 4))):
        at = BASE + timedelta(days=draw(st.integers(-40, 6)), hours=draw(st.integers(-12, 12)))
        out.append(OfferEvent(
            shop=SHOP, platform="shopify", delivery_id=f"offer-{i}", topic="offers",
            offer_id=f"o{draw(st.integers(1, 2))}",
            customer_key=draw(st.sampled_from([c for c in CUSTOMERS if c])),
            action=draw(st.sampled_from(["presented", "accepted", "declined"])), at=at))
    return out


@st.composite
def scenario(draw: st.DrawFn) -> tuple[str, list[object], list[object], list[date]]:
    zone = draw(st.sampled_from(ZONES))
    events: list[object] = []
    for index in range(draw(st.integers(1, 6))):
        events += draw(order_history(index))
    events += draw(offer_events())
    # Deliveries: every event at least once, some again (retries, replays), in any order.
    repeats = draw(st.lists(st.sampled_from(range(len(events))), max_size=len(events)))
    deliveries = draw(st.permutations(events + [events[i] for i in repeats]))
    local = ZoneInfo(zone)
    candidates = sorted({e.created_at.astimezone(local).date() for e in events
                         if isinstance(e, OrderState)}
                        | {BASE.astimezone(local).date() + timedelta(days=400)})
    days = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=3, unique=True))
    return zone, events, deliveries, days


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario())
def test_any_delivery_order_gives_the_reference_figures_for_every_period(redis_url, case):
    zone, events, deliveries, days = case
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        config = settings_for(SHOP, timezone=zone, lifespan_years=2.5)
        apply_all(redis_url, deliveries, config)  # type: ignore[arg-type]
        orders = reference.counting_orders(events, ZoneInfo(zone))
        offers = reference.offers(events, ZoneInfo(zone))
        for day in days:
            for period in PERIODS:
                want = reference.figures(orders, offers, period, day, Decimal("2.5"))
                got = figures(client, config, SHOP, period, day)
                assert got == want, f"{period} containing {day} in {zone}"
    finally:
        client.close()


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario(), st.randoms(use_true_random=False))
def test_two_delivery_orders_leave_identical_aggregates(redis_url, case, rnd):
    """Not only the figures: every bucket hash ends byte-for-byte the same."""
    zone, events, deliveries, _ = case
    config = settings_for(SHOP, timezone=zone)
    client = redis.Redis.from_url(redis_url)
    snapshots = []
    try:
        for order in (deliveries, rnd.sample(deliveries, len(deliveries))):
            client.flushdb()
            apply_all(redis_url, order, config)  # type: ignore[arg-type]
            # A count that went up and back down stays as "0"; that is the same as absent.
            hashes = {key: {f: v for f, v in client.hgetall(key).items() if v != b"0"}
                      for key in client.scan_iter(match="xs:*:b:*")}
            snapshots.append({key: h for key, h in hashes.items() if h})
        assert snapshots[0] == snapshots[1]
    finally:
        client.close()
