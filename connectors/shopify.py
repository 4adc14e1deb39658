"""Shopify: verify (X-Shopify-Hmac-Sha256 with the app secret), parse, map to events.

Topics mapped: every `orders/*` topic whose body is a whole order (create, updated, paid,
fulfilled, partially_fulfilled, cancelled), `orders/delete` (the body holds only the id) and
`refunds/create`. Other topics are acknowledged and produce nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from xsell_stream.events import Event, OrderDeleted, OrderState, Refund, RefundIssued

from .common import CustomerKeys, load_json, money, object_id, require, timestamp
from .errors import Rejected

PLATFORM = "shopify"
SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
SHOP_HEADER = "X-Shopify-Shop-Domain"
DELIVERY_HEADER = "X-Shopify-Webhook-Id"
TOPIC_HEADER = "X-Shopify-Topic"

ORDER_TOPICS = frozenset(
    {
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/fulfilled",
        "orders/partially_fulfilled",
        "orders/cancelled",
    }
)


def shop_of(headers: Mapping[str, str]) -> str | None:
    value = headers.get(SHOP_HEADER)
    return value.strip().lower() if value else None


def shop_money(obj: dict[str, Any], field: str, what: str) -> Decimal:
    """`<field>_set.shop_money.amount` when present, else the plain field (shop currency)."""
    amount_set = obj.get(f"{field}_set")
    if isinstance(amount_set, dict) and isinstance(amount_set.get("shop_money"), dict):
        return money(amount_set["shop_money"].get("amount"), f"{what} {field}_set.shop_money")
    return money(require(obj, field, what), f"{what} {field}")


def refund_amount(refund: dict[str, Any]) -> Decimal:
    """What a refund gave back: its successful `refund` transactions."""
    total = Decimal(0)
    for tx in refund.get("transactions") or []:
        if not isinstance(tx, dict):
            raise Rejected(400, "refund transaction is not an object")
        if tx.get("kind") == "refund" and tx.get("status") == "success":
            total += shop_money(tx, "amount", "refund transaction")
    return total


def _refund(refund: Any) -> Refund:
    if not isinstance(refund, dict):
        raise Rejected(400, "refund is not an object")
    return Refund(refund_id=object_id(require(refund, "id", "refund"), "refund id"),
                  amount=refund_amount(refund))


def _excluded_because(order: dict[str, Any], topic: str) -> str:
    if order.get("test") is True:
        return "test order"
    if topic == "orders/cancelled" or order.get("cancelled_at"):
        return "cancelled"
    if order.get("financial_status") == "voided":
        return "voided"
    return ""


def parse(
    topic: str, raw: bytes, shop: str, delivery_id: str, keys: CustomerKeys, now: datetime
) -> Event | None:
    """The event for one verified delivery, or None for a topic that carries no figure."""
    if topic not in ORDER_TOPICS and topic not in ("orders/delete", "refunds/create"):
        return None
    body = load_json(raw)
    if not isinstance(body, dict):
        raise Rejected(400, f"{topic} body is not a JSON object")
    common = {"shop": shop, "platform": PLATFORM, "delivery_id": delivery_id, "topic": topic}
    if topic == "refunds/create":
        order_id = object_id(require(body, "order_id", "refund"), "refund order_id")
        return RefundIssued(**common, order_id=order_id, refund=_refund(body))
    order_id = object_id(require(body, "id", "order"), "order id")
    if topic == "orders/delete":
        return OrderDeleted(**common, order_id=order_id, deleted_at=now)

    created_at = timestamp(require(body, "created_at", "order"), "order created_at")
    updated_at = timestamp(body.get("updated_at") or body["created_at"], "order updated_at")
    customer = body.get("customer")
    if customer is not None and not isinstance(customer, dict):
        raise Rejected(400, "order customer is not an object")
    customer = customer or {}
    email = body.get("email") or body.get("contact_email") or customer.get("email")
    line_items = body.get("line_items") or []
    if not isinstance(line_items, list) or not all(isinstance(li, dict) for li in line_items):
        raise Rejected(400, "order line_items is not a list of objects")
    refunds = body.get("refunds") or []
    if not isinstance(refunds, list):
        raise Rejected(400, "order refunds is not a list")
    excluded = _excluded_because(body, topic)
    return OrderState(
        **common,
        order_id=order_id,
        updated_at=updated_at,
        created_at=created_at,
        counts=not excluded,
        excluded_because=excluded,
        customer_key=keys.key(customer.get("id"), email),
        currency=str(require(body, "currency", "order")),
        total=shop_money(body, "total_price", "order"),
        refunds=tuple(_refund(r) for r in refunds),
        product_ids=tuple(
            object_id(li["product_id"], "line item product_id")
            for li in line_items
            if li.get("product_id") is not None
        ),
    )
