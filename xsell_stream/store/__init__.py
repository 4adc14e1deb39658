"""Redis: the key schema, the Lua scripts that apply events, and the reads behind the
report and the exporter. Every Redis key of the project is named here.

Key schema (one shop's keys share the hash tag `{shop}`):

    xs:{shop}:o:<order id>          hash  newest raw state (v, d, s, n, k, t, b, m, p, u),
                                          its last sign of life (a), latest deletion (x),
                                          final deletion (f), and its contribution (c*)
    xs:{shop}:o:<order id>:r        hash  refund id -> refunded units (largest seen)
    xs:{shop}:b:<bucket>            hash  orders, revenue, named_revenue, customers,
                                          repeat_customers, multi_product_customers,
                                          upsell_offered_customers, upsell_accepted_customers
    xs:{shop}:b:<bucket>:co         hash  customer key -> counting orders in the bucket
    xs:{shop}:b:<bucket>:mo         hash  customer key -> orders with 2+ distinct products
    xs:{shop}:b:<bucket>:sp:<cust>  hash  product id -> single-product orders of that product
    xs:{shop}:b:<bucket>:uo / :ua   hash  customer key -> offers presented / accepted (offer
                                          events, and counting orders with an upsell line item)
    xs:{shop}:offer:<identity>      str   an offer event already counted
    xs:{shop}:dlv:<delivery id>     str   a delivery whose effect is in Redis (expires)
    xs:{shop}:pending               hash  delivery id -> accepted, not yet applied
    xs:{shop}:unapplied             hash  delivery id -> its encoded event, until applied (what
                                          `up` hands again to an embedded broker that lost it)
    xs:{shop}:meta                  hash  currency
    xs:{shop}:stats                 hash  events_applied / _unchanged / _stale, last_event_unix
    xs:webhooks                     hash  "<platform>|<shop or unknown>|<outcome>" -> count
    xs:dead_letters                 hash  "<shop>" -> events sent to the dead-letter topic

Money is kept as integers in 1/10000 of the currency unit (exact; see events.MONEY_SCALE).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any

import redis
import redis.asyncio as aredis

from ..events import Event, OfferEvent, OrderDeleted, OrderState, RefundIssued, to_units
from ..metrics import Counts
from ..periods import Span, buckets_of, day_bucket

# How long a done delivery id is remembered (Shopify retries for 48 hours).
DELIVERY_MEMORY_SECONDS = 7 * 24 * 3600
WEBHOOKS_KEY = "xs:webhooks"
DEAD_LETTERS_KEY = "xs:dead_letters"

_BUCKET_FIELDS = (
    "orders",
    "revenue",
    "named_revenue",
    "customers",
    "repeat_customers",
    "multi_product_customers",
    "upsell_offered_customers",
    "upsell_accepted_customers",
)


def prefix(shop: str) -> str:
    return f"xs:{{{shop}}}:"


def _lua(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(instant: datetime) -> int:
    """Microseconds since the epoch, exactly (no float on the way)."""
    return (instant - _EPOCH) // timedelta(microseconds=1)


def _counts(values: list[Any]) -> Counts:
    n = [int(v) if v is not None else 0 for v in values]
    return Counts(
        orders=n[0],
        revenue_units=n[1],
        named_revenue_units=n[2],
        customers=n[3],
        repeat_customers=n[4],
        multi_product_customers=n[5],
        upsell_offered_customers=n[6],
        upsell_accepted_customers=n[7],
    )


def script_args(event: Event, zone: Any) -> tuple[str, list[str]]:
    """The Lua script and its ARGV for one event (the delivery bookkeeping is appended by
    the caller). Buckets are computed here, from the shop's zone, and stored with the
    order, so a contribution is always removed from the buckets it was added to."""
    if isinstance(event, OfferEvent):
        # The whole event is its identity: the same event twice counts once, two events of
        # one offer at different instants each count in their own periods.
        identity = f"{event.offer_id}|{event.action}|{event.customer_key}|{_micros(event.at)}"
        buckets = ",".join(buckets_of(event.at, zone))
        return "offer", [identity, event.customer_key, event.action, buckets]
    if isinstance(event, OrderState):
        products = sorted(set(event.product_ids))
        payload: dict[str, Any] = {
            "v": str(_micros(event.updated_at)),
            "n": "1" if event.counts else "0",
            "k": event.customer_key or "",
            "t": str(to_units(event.total)),
            "b": ",".join(buckets_of(event.created_at, zone)),
            "m": "1" if len(products) >= 2 else "0",
            "p": products[0] if len(products) == 1 else "",
            "cur": event.currency,
        }
        if event.upsell_line_items:
            # Only when set, so the digest of every state without an upsell is unchanged.
            payload["u"] = "1"
        if event.stage:
            payload["s"] = str(event.stage)
        if event.refunds_complete:
            # Part of the digest: the refund list decides this state's revenue.
            payload["rc"] = [[r.refund_id, str(to_units(r.amount))]
                             for r in sorted(event.refunds, key=lambda r: r.refund_id)]
        payload["d"] = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        alive = event.updated_at
        if event.restored_at is not None and event.restored_at > alive:
            alive = event.restored_at
        payload["a"] = str(_micros(alive))
        payload["refunds"] = [[r.refund_id, str(to_units(r.amount))] for r in event.refunds]
        return "order", ["state", event.order_id, json.dumps(payload)]
    if isinstance(event, RefundIssued):
        refund = [event.refund.refund_id, str(to_units(event.refund.amount))]
        return "order", ["refund", event.order_id, json.dumps({"refunds": [refund]})]
    if isinstance(event, OrderDeleted):
        deletion = {"x": str(_micros(event.deleted_at)), "f": "1" if event.final else "0"}
        return "order", ["delete", event.order_id, json.dumps(deletion)]
    raise TypeError(f"no script for {type(event).__name__}")


class EventApplier:
    """The worker's side: applies events with one atomic Lua call each."""

    def __init__(self, client: aredis.Redis) -> None:
        self._client = client
        self._order = client.register_script(_lua("apply_order.lua"))
        self._offer = client.register_script(_lua("apply_offer.lua"))

    async def apply(self, event: Event, zone: Any) -> str:
        which, args = script_args(event, zone)
        p = prefix(event.shop)
        done = [event.delivery_id, str(DELIVERY_MEMORY_SECONDS), event.delivery_id]
        if which == "order":
            kind, order_id, payload = args
            argv = [p, kind, order_id, *done, payload]
            result = await self._order(args=argv)
        else:
            argv = [p, *args, *done]
            result = await self._offer(args=argv)
        return result.decode() if isinstance(result, bytes) else str(result)

    async def count_dead_letter(self, shop: str) -> None:
        await self._client.hincrby(DEAD_LETTERS_KEY, shop, 1)


class DeliveryLedger:
    """The connector's side: which deliveries are done, which are in flight."""

    _RELEASE = """
    local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
    if n <= 0 then
      redis.call('HDEL', KEYS[1], ARGV[1])
      redis.call('HDEL', KEYS[2], ARGV[1])
    end
    return n
    """

    def __init__(self, client: aredis.Redis) -> None:
        self._client = client
        self._release = client.register_script(self._RELEASE)

    async def is_done(self, shop: str, delivery_id: str) -> bool:
        return bool(await self._client.exists(f"{prefix(shop)}dlv:{delivery_id}"))

    async def hold(self, shop: str, delivery_id: str, event: bytes) -> None:
        """Mark a delivery as accepted-but-not-applied before it is produced, keeping its
        event until the worker applies it: a broker that loses what it acknowledged (the
        embedded one keeps nothing across a restart) is handed it again by `up`."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hincrby(f"{prefix(shop)}pending", delivery_id, 1)
            pipe.hset(f"{prefix(shop)}unapplied", delivery_id, event)
            await pipe.execute()

    async def release(self, shop: str, delivery_id: str) -> None:
        """Undo `hold` for a delivery that could not be handed to the broker."""
        await self._release(keys=[f"{prefix(shop)}pending", f"{prefix(shop)}unapplied"],
                            args=[delivery_id])

    async def count_webhook(self, platform: str, shop: str, outcome: str) -> None:
        await self._client.hincrby(WEBHOOKS_KEY, f"{platform}|{shop}|{outcome}", 1)


def unapplied_events(client: redis.Redis, shop: str) -> list[bytes]:
    """The encoded events of the shop's accepted deliveries not applied yet."""
    return list(client.hvals(f"{prefix(shop)}unapplied"))


class AggregateReader:
    """Reads for the report and the exporter (synchronous)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._read_days = client.register_script(_lua("read_days.lua"))

    def bucket(self, shop: str, bucket: str) -> Counts:
        return _counts(self._client.hmget(f"{prefix(shop)}b:{bucket}", *_BUCKET_FIELDS))

    def days(self, shop: str, days: list[date]) -> Counts:
        args = [prefix(shop), *(day_bucket(d) for d in days)]
        return _counts(self._read_days(args=args))

    def span(self, shop: str, span: Span) -> Counts:
        if span.bucket is not None:
            return self.bucket(shop, span.bucket)
        return self.days(shop, span.days())

    def currency(self, shop: str) -> str | None:
        value = self._client.hget(f"{prefix(shop)}meta", "currency")
        return value.decode() if value else None

    def pending(self, shop: str) -> int:
        return int(self._client.hlen(f"{prefix(shop)}pending"))

    def stats(self, shop: str) -> dict[str, int]:
        raw = self._client.hgetall(f"{prefix(shop)}stats")
        return {k.decode(): int(v) for k, v in raw.items()}

    def webhooks(self) -> dict[tuple[str, str, str], int]:
        raw = self._client.hgetall(WEBHOOKS_KEY)
        out: dict[tuple[str, str, str], int] = {}
        for field, value in raw.items():
            platform, shop, outcome = field.decode().split("|", 2)
            out[(platform, shop, outcome)] = int(value)
        return out

    def dead_letters(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self._client.hgetall(DEAD_LETTERS_KEY).items()}
