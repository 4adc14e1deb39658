"""Upsell offers: POST /webhooks/offers, sent by the store's upsell app or backend.

Signed like the stores' own webhooks (base64 HMAC-SHA256 over the raw body with one of the
shop's secrets) in `X-Xsell-Hmac-Sha256`; the shop in `X-Xsell-Shop`, a unique delivery id in
`X-Xsell-Delivery-Id`. Body:

    {"offer_id": "bundle-42", "action": "presented" | "accepted" | "declined",
     "at": "2024-05-01T10:00:00Z", "customer_id": 123, "email": "…", "order_id": 456}

The customer key follows METRICS.md (customer id, else the keyed e-mail hash). An offer to
an anonymous visitor carries no customer-based figure, so it is acknowledged and dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from xsell_stream.events import OfferEvent

from .common import CustomerKeys, load_json, object_id, require, timestamp
from .errors import Rejected

PLATFORM_PATH = "offers"
SIGNATURE_HEADER = "X-Xsell-Hmac-Sha256"
SHOP_HEADER = "X-Xsell-Shop"
DELIVERY_HEADER = "X-Xsell-Delivery-Id"
ACTIONS = frozenset({"presented", "accepted", "declined"})


def shop_of(headers: Mapping[str, str]) -> str | None:
    value = headers.get(SHOP_HEADER)
    return value.strip().lower() if value else None


def parse(raw: bytes, shop: str, platform: str, delivery_id: str,
          keys: CustomerKeys) -> OfferEvent | None:
    body = load_json(raw)
    if not isinstance(body, dict):
        raise Rejected(400, "offer body is not a JSON object")
    offer_id = require(body, "offer_id", "offer")
    if not isinstance(offer_id, str | int) or isinstance(offer_id, bool) or not str(offer_id):
        raise Rejected(400, f"offer offer_id is not an id: {offer_id!r}")
    action = require(body, "action", "offer")
    if not isinstance(action, str) or action not in ACTIONS:
        raise Rejected(400, f"offer action must be one of {', '.join(sorted(ACTIONS))}")
    at: datetime = timestamp(require(body, "at", "offer"), "offer at")
    customer_key = keys.key(body.get("customer_id"), body.get("email"))
    if customer_key is None:
        return None
    order_id = body.get("order_id")
    return OfferEvent(
        shop=shop, platform=platform, delivery_id=delivery_id, topic=f"offers/{action}",
        offer_id=str(offer_id)[:200], customer_key=customer_key, action=action, at=at,
        order_id=object_id(order_id, "offer order_id") if order_id is not None else None,
    )
