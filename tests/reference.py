"""An independent batch reference for METRICS.md: plain Python over a set of canonical events.

Written apart from the streaming code on purpose: no Redis, no buckets, no Lua, nothing from
`xsell_stream.store`, `periods` or `metrics`. It sees every event at once, so delivery order
cannot matter to it; the streaming side must agree with it whatever the order.

The rules it encodes (METRICS.md plus the issue-3 decisions):
- an order's state is its state with the greatest `updated_at`, and of those the greatest
  `stage` (tests never give two different states of one order the same pair);
- its refunds are the union, by refund id, of every refund seen for it anywhere (a refund
  event or any state's `refunds`), each with the largest amount seen; except when its newest
  state's list is complete (`refunds_complete`, WooCommerce): then that list alone;
- it is deleted when a final deletion exists, or when the latest deletion instant is later
  than its latest sign of life (the greatest of its states' `updated_at` and restore instants);
- it counts when its state counts and it is not deleted; it belongs to the local calendar day
  of its `created_at` in the shop's zone;
- an offer event is identified by all its fields, and counts in the day of its instant;
- a counting order of a customer whose newest state has an upsell line item is an accepted
  (so also presented) upsell of that customer on the order's day (METRICS.md §5).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from xsell_stream.events import OfferEvent, OrderDeleted, OrderState, RefundIssued


@dataclass(frozen=True)
class Order:
    day: date
    customer: str | None
    revenue: Decimal
    products: frozenset[str]
    upsell: bool = False


@dataclass
class _History:
    states: list[OrderState] = field(default_factory=list)
    refunds: dict[str, Decimal] = field(default_factory=dict)
    deletions: list[OrderDeleted] = field(default_factory=list)


def counting_orders(events: Iterable[object], zone: ZoneInfo) -> list[Order]:
    histories: dict[str, _History] = defaultdict(_History)
    for event in events:
        if isinstance(event, OrderState):
            history = histories[event.order_id]
            history.states.append(event)
            refunds = event.refunds
        elif isinstance(event, RefundIssued):
            history = histories[event.order_id]
            refunds = (event.refund,)
        elif isinstance(event, OrderDeleted):
            history = histories[event.order_id]
            history.deletions.append(event)
            refunds = ()
        else:
            continue
        if isinstance(event, OrderState) and event.refunds_complete:
            continue  # taken whole from the winning state below
        for refund in refunds:
            seen = history.refunds.get(refund.refund_id)
            if seen is None or refund.amount > seen:
                history.refunds[refund.refund_id] = refund.amount

    orders = []
    for history in histories.values():
        if not history.states:
            continue
        state = max(history.states, key=lambda s: (s.updated_at, s.stage))
        if not state.counts:
            continue
        if any(d.final for d in history.deletions):
            continue
        if history.deletions:
            last_deleted = max(d.deleted_at for d in history.deletions)
            signs_of_life = [s.updated_at for s in history.states]
            signs_of_life += [s.restored_at for s in history.states if s.restored_at]
            if last_deleted > max(signs_of_life):
                continue
        refunded = dict(history.refunds)
        if state.refunds_complete:
            refunded = {r.refund_id: r.amount for r in state.refunds}
        orders.append(Order(
            day=state.created_at.astimezone(zone).date(),
            customer=state.customer_key,
            revenue=state.total - sum(refunded.values(), Decimal(0)),
            products=frozenset(state.product_ids),
            upsell=bool(state.upsell_line_items),
        ))
    return orders


def offers(events: Iterable[object], zone: ZoneInfo) -> list[tuple[date, str, str]]:
    """Distinct offer events as (local day, customer, action)."""
    seen = set()
    for event in events:
        if isinstance(event, OfferEvent):
            seen.add((event.offer_id, event.customer_key, event.action, event.at))
    return [(at.astimezone(zone).date(), customer, action)
            for _, customer, action, at in seen]


def days_of(period: str, day: date) -> tuple[date, date]:
    """First and last local day of the period or window containing / ending on `day`."""
    if period == "day":
        return day, day
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=6)
    if period == "month":
        start = day.replace(day=1)
        nxt = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
        return start, nxt - timedelta(days=1)
    if period == "quarter":
        first_month = 3 * ((day.month - 1) // 3) + 1
        start = date(day.year, first_month, 1)
        after = first_month + 3
        nxt = date(day.year + (after > 12), (after - 1) % 12 + 1, 1)
        return start, nxt - timedelta(days=1)
    if period == "year":
        return date(day.year, 1, 1), date(day.year, 12, 31)
    n = int(period.removesuffix("d"))
    return day - timedelta(days=n - 1), day


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _div(a: int, b: int) -> float | None:
    return None if b == 0 else a / b


def figures(orders: list[Order], offer_events: list[tuple[date, str, str]], period: str,
            day: date, lifespan_years: Decimal) -> dict[str, object]:
    start, end = days_of(period, day)
    inside = [o for o in orders if start <= o.day <= end]
    revenue = sum((o.revenue for o in inside), Decimal(0))
    named = [o for o in inside if o.customer is not None]
    named_revenue = sum((o.revenue for o in named), Decimal(0))
    per_customer: dict[str, list[Order]] = defaultdict(list)
    for o in named:
        per_customer[o.customer].append(o)  # type: ignore[index]
    customers = len(per_customer)
    repeat = sum(1 for os in per_customer.values() if len(os) >= 2)
    multi = sum(1 for os in per_customer.values()
                if len(frozenset().union(*(o.products for o in os))) >= 2)
    upsold = {o.customer for o in named if o.upsell}
    offered = {c for d, c, _ in offer_events if start <= d <= end} | upsold
    accepted = {c for d, c, a in offer_events if start <= d <= end and a == "accepted"} | upsold

    clv_start = end - timedelta(days=364)
    year = [o for o in orders if clv_start <= o.day <= end and o.customer is not None]
    year_customers = len({o.customer for o in year})
    year_revenue = sum((o.revenue for o in year), Decimal(0))
    return {
        "orders": len(inside),
        "revenue": _cents(revenue),
        "customers": customers,
        "average_order_value": _cents(revenue / len(inside)) if inside else None,
        "revenue_per_customer": _cents(named_revenue / customers) if customers else None,
        "repeat_customers": repeat,
        "repeat_purchase_rate": _div(repeat, customers),
        "multi_product_customers": multi,
        "cross_sell_ratio": _div(multi, customers),
        "upsell_offered_customers": len(offered),
        "upsell_accepted_customers": len(accepted),
        "upsell_conversion_rate": _div(len(accepted), len(offered)),
        "customer_lifetime_value": (_cents(year_revenue * lifespan_years / year_customers)
                                    if year_customers else None),
    }
