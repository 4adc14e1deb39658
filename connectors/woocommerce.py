"""WooCommerce: verify (X-WC-Webhook-Signature with the webhook secret, used literally),
parse, map to events.

Topics mapped: `order.created`, `order.updated`, `order.restored` (whole orders) and
`order.deleted` (the body holds only the id). WooCommerce fires `order.deleted` when an order
is trashed as well as when it is deleted for good, and `order.restored` when it leaves the
trash; a restore received after a deletion brings the order back. The creation ping
(`webhook_id=N` as a form body, unsigned) and other topics are acknowledged and produce
nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from xsell_stream.events import Event, OrderDeleted, OrderState, Refund

from .common import (
    UPSELL_PROPERTY,
    CustomerKeys,
    load_json,
    money,
    object_id,
    object_list,
    require,
    timestamp,
    upsell_line_items,
)
from .errors import Rejected

PLATFORM = "woocommerce"
SIGNATURE_HEADER = "X-WC-Webhook-Signature"
SOURCE_HEADER = "X-WC-Webhook-Source"
SHOP_HEADER = SOURCE_HEADER  # the shop id is the host of this URL
DELIVERY_HEADER = "X-WC-Webhook-Delivery-ID"
TOPIC_HEADER = "X-WC-Webhook-Topic"

ORDER_TOPICS = frozenset({"order.created", "order.updated", "order.restored"})
# Statuses of orders that are not (or no longer) placed: METRICS.md section 1.
# Not placed yet: `pending`, the block checkout's `checkout-draft`, and the `draft` /
# `auto-draft` of an order still being written in wp-admin.
NOT_COUNTED = frozenset({"cancelled", "failed", "trash", "pending", "checkout-draft", "draft",
                         "auto-draft"})

# Stages of an order's life, for two states with the same `date_modified_gmt` (a checkout
# that creates and pays an order in one second): the later one wins. A custom status counts
# as processing.
_STAGES = {"checkout-draft": 0, "auto-draft": 0, "draft": 0, "pending": 1, "failed": 2,
           "on-hold": 3, "processing": 4, "completed": 5, "refunded": 6, "cancelled": 7,
           "trash": 8}
_CUSTOM_STATUS_STAGE = 4

_PING = re.compile(rb"webhook_id=\d+")


def is_ping(headers: Mapping[str, str], raw: bytes) -> bool:
    """The unsigned request WooCommerce sends once when a webhook is created or saved."""
    return SIGNATURE_HEADER not in headers and _PING.fullmatch(raw.strip()) is not None


def shop_of(headers: Mapping[str, str]) -> str | None:
    """The shop id is the host of X-WC-Webhook-Source (`https://shop.example/`)."""
    source = headers.get(SOURCE_HEADER)
    if not source:
        return None
    host = urlsplit(source.strip()).hostname
    return host.lower() if host else None


def _refund(refund: Any) -> Refund:
    if not isinstance(refund, dict):
        raise Rejected(400, "refund is not an object")
    # WooCommerce lists refunds as negative strings ("-45.00").
    amount = money(require(refund, "total", "refund"), "refund total")
    return Refund(refund_id=object_id(require(refund, "id", "refund"), "refund id"),
                  amount=-amount if amount < 0 else amount)


def parse(
    topic: str, raw: bytes, shop: str, delivery_id: str, keys: CustomerKeys, now: datetime,
    upsell_property: str = UPSELL_PROPERTY,
) -> Event | None:
    """The event for one verified delivery, or None for a topic that carries no figure.
    Line items whose `meta_data` hold the key `upsell_property` are accepted upsells."""
    if topic not in ORDER_TOPICS and topic != "order.deleted":
        return None
    body = load_json(raw)
    if not isinstance(body, dict):
        raise Rejected(400, f"{topic} body is not a JSON object")
    common = {"shop": shop, "platform": PLATFORM, "delivery_id": delivery_id, "topic": topic}
    order_id = object_id(require(body, "id", "order"), "order id")
    if topic == "order.deleted":
        return OrderDeleted(**common, order_id=order_id, deleted_at=now)

    # date_created is site-local without a zone; the _gmt fields are UTC.
    created_at = timestamp(require(body, "date_created_gmt", "order"), "order date_created_gmt",
                           assume_utc=True)
    modified = body.get("date_modified_gmt") or body["date_created_gmt"]
    updated_at = timestamp(modified, "order date_modified_gmt", assume_utc=True)
    status = str(require(body, "status", "order"))
    billing = body.get("billing") or {}
    if not isinstance(billing, dict):
        raise Rejected(400, "order billing is not an object")
    line_items = object_list(body, "line_items", "order")
    refunds = object_list(body, "refunds", "order")
    excluded = f"status {status}" if status in NOT_COUNTED else ""
    total: Decimal = money(require(body, "total", "order"), "order total")
    return OrderState(
        **common,
        order_id=order_id,
        updated_at=updated_at,
        created_at=created_at,
        counts=not excluded,
        excluded_because=excluded,
        customer_key=keys.key(body.get("customer_id"), billing.get("email")),
        currency=str(require(body, "currency", "order")),
        total=total,
        refunds=tuple(_refund(r) for r in refunds),
        restored_at=now if topic == "order.restored" else None,
        product_ids=tuple(
            object_id(li["product_id"], "line item product_id")
            for li in line_items
            if li.get("product_id") not in (None, 0, "0", "")
        ),
        upsell_line_items=upsell_line_items(line_items, "meta_data", "key", upsell_property),
        stage=_STAGES.get(status, _CUSTOM_STATUS_STAGE),
        # An order's refunds[] lists all its refunds; one deleted in wp-admin leaves it.
        refunds_complete=True,
    )
