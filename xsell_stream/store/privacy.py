"""What the store holds about one customer or one shop, and how it is forgotten (Shopify's
mandatory compliance webhooks; see connectors/compliance.py).

A customer appears in the store only through their customer key (`id:<platform id>` or
`email:<keyed hash>`, never an e-mail in clear), in these keys of the schema in
`store/__init__.py`:

    xs:{shop}:o:<order id>             fields `k` and `ck` (the order's customer, now and as
                                       last counted)
    xs:{shop}:b:<bucket>:co|:mo|:uo|:ua  a field named by the customer key
    xs:{shop}:b:<bucket>:sp:<cust>     a hash named by the customer key
    xs:{shop}:offer:<offer>|<action>|<cust>|<micros>  a string named by the customer key

Redacting a customer replaces each of their keys, everywhere above, by a fresh random
pseudonym `redacted:<32 hex>` (one per key, never derived from the customer). The shop's
totals stay exactly as they were, and a later change to one of those orders (a refund, a
cancellation) still removes exactly what the order added, because the arithmetic only needs
the key to be the same everywhere, not to be the customer's. Nothing left names the customer.

New keys: none. Redacting a shop deletes every `xs:{shop}:*` key and the shop's fields of
`xs:webhooks` and `xs:dead_letters`.

Not atomic across keys: an event of the same customer applied while a redaction runs can
bring their key back for that order; Shopify sends customers/redact days after the request,
when no such event is in flight. For the same reason `xs:{shop}:unapplied` (the events of
accepted deliveries, kept only until the worker applies them, normally for well under a
second) is left as it is.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aredis

from . import DEAD_LETTERS_KEY, WEBHOOKS_KEY, prefix

PSEUDONYM_PREFIX = "redacted:"
_PER_CUSTOMER_HASHES = (":co", ":mo", ":uo", ":ua")

# Renames one field of a hash (if present) without losing a concurrent increment.
_RENAME_FIELD = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[1], ARGV[2], v)
return 1
"""

# Replaces the customer of an order (now `k` and as counted `ck`) when it is `ARGV[1]`.
_REPLACE_ORDER_CUSTOMER = """
local n = 0
for _, f in ipairs({'k', 'ck'}) do
  if redis.call('HGET', KEYS[1], f) == ARGV[1] then
    redis.call('HSET', KEYS[1], f, ARGV[2])
    n = n + 1
  end
end
return n
"""


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class CustomerData:
    """What the store holds about one customer in one shop (for customers/data_request)."""

    customer_keys: list[str]
    orders: dict[str, dict[str, str]] = field(default_factory=dict)
    buckets: list[str] = field(default_factory=list)
    offers: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"customer_keys": self.customer_keys, "orders": self.orders,
                "buckets": sorted(self.buckets), "offer_events": self.offers}


@dataclass
class Redaction:
    """What a customers/redact changed: how many places named the customer."""

    orders: int = 0
    bucket_entries: int = 0
    offers: int = 0


class Privacy:
    def __init__(self, client: aredis.Redis) -> None:
        self._client = client
        self._rename_field = client.register_script(_RENAME_FIELD)
        self._replace_order_customer = client.register_script(_REPLACE_ORDER_CUSTOMER)

    async def _scan(self, pattern: str) -> AsyncIterator[str]:
        async for key in self._client.scan_iter(match=pattern, count=1000):
            yield _text(key)

    async def _orders_of(self, shop: str, customer_keys: list[str]) -> dict[str, dict[str, str]]:
        p = prefix(shop)
        found: dict[str, dict[str, str]] = {}
        async for key in self._scan(f"{_glob_escape(p)}o:*"):
            if key.endswith(":r"):
                continue
            k, ck = await self._client.hmget(key, "k", "ck")
            if (k and _text(k) in customer_keys) or (ck and _text(ck) in customer_keys):
                raw = await self._client.hgetall(key)
                found[key] = {_text(a): _text(b) for a, b in raw.items()}
        return found

    async def _offers_of(self, shop: str,
                         customer_key: str) -> AsyncIterator[tuple[str, str, str]]:
        """The customer's counted offer events as (key, what comes before the customer key,
        what comes after), split from the right, since an offer id may hold anything."""
        p = prefix(shop)
        async for key in self._scan(f"{_glob_escape(p)}offer:*|{_glob_escape(customer_key)}|*"):
            head, customer, instant = key.rsplit("|", 2)
            if customer == customer_key:
                yield key, head, instant

    async def customer_data(self, shop: str, customer_keys: list[str]) -> CustomerData:
        p = prefix(shop)
        data = CustomerData(customer_keys)
        for key, fields in (await self._orders_of(shop, customer_keys)).items():
            order_id = key[len(p) + 2:]
            data.orders[order_id] = {
                "total_units": fields.get("t", ""), "counts": fields.get("n", ""),
                "buckets": fields.get("b", ""), "multi_product": fields.get("m", ""),
            }
        async for key in self._scan(f"{_glob_escape(p)}b:*"):
            for suffix in _PER_CUSTOMER_HASHES:
                if key.endswith(suffix):
                    if any([await self._client.hexists(key, c) for c in customer_keys]):
                        data.buckets.append(key[len(p) + 2:])
            if any(key.endswith(f":sp:{c}") for c in customer_keys):
                data.buckets.append(key[len(p) + 2:])
        for c in customer_keys:
            async for _ in self._offers_of(shop, c):
                data.offers += 1
        return data

    async def redact_customer(self, shop: str, customer_keys: list[str]) -> Redaction:
        p = prefix(shop)
        pseudonyms = {c: PSEUDONYM_PREFIX + secrets.token_hex(16) for c in customer_keys}
        done = Redaction()
        for key in await self._orders_of(shop, customer_keys):
            for c, pseudonym in pseudonyms.items():
                if await self._replace_order_customer(keys=[key], args=[c, pseudonym]):
                    done.orders += 1
        async for key in self._scan(f"{_glob_escape(p)}b:*"):
            if key.endswith(_PER_CUSTOMER_HASHES):
                for c, pseudonym in pseudonyms.items():
                    done.bucket_entries += int(
                        await self._rename_field(keys=[key], args=[c, pseudonym]))
                continue
            for c, pseudonym in pseudonyms.items():
                if key.endswith(f":sp:{c}"):
                    await self._client.rename(key, key[: -len(c)] + pseudonym)
                    done.bucket_entries += 1
        for c, pseudonym in pseudonyms.items():
            async for key, head, instant in self._offers_of(shop, c):
                await self._client.rename(key, f"{head}|{pseudonym}|{instant}")
                done.offers += 1
        return done

    async def redact_shop(self, shop: str) -> int:
        """Deletes everything of the shop; returns how many keys and fields went."""
        p = prefix(shop)
        removed = 0
        batch: list[str] = []
        async for key in self._scan(f"{_glob_escape(p)}*"):
            batch.append(key)
            if len(batch) >= 500:
                removed += await self._client.unlink(*batch)
                batch.clear()
        if batch:
            removed += await self._client.unlink(*batch)
        fields = [f for f in map(_text, await self._client.hkeys(WEBHOOKS_KEY))
                  if f.split("|")[1:2] == [shop]]
        if fields:
            removed += await self._client.hdel(WEBHOOKS_KEY, *fields)
        removed += await self._client.hdel(DEAD_LETTERS_KEY, shop)
        return removed
