"""Shopify: verify (X-Shopify-Hmac-Sha256 with the app secret), parse, map to events.

Topics mapped: every `orders/*` topic whose body is a whole order (create, updated, paid,
fulfilled, partially_fulfilled, cancelled), `orders/delete` (the body holds only the id) and
`refunds/create`. Other topics are acknowledged and produce nothing.

Money: order amounts come from `*_set.shop_money`. Refund transactions carry only `amount` and
`currency`, and for a multi-currency order that is the presentment currency (refunds are
created in the presentment currency); such an amount is converted at the refund's own rate,
taken from the shop and presentment money of the refund's line items, shipping and
adjustments. A deleted Shopify order cannot be restored, so `orders/delete` is final.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from xsell_stream.events import Event, OrderDeleted, OrderState, Refund, RefundIssued

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


# The parts of a refund that carry both shop and presentment money: (list field, set fields).
_REFUND_PARTS = (
    ("refund_line_items", ("subtotal_set", "total_tax_set")),
    ("refund_shipping_lines", ("subtotal_amount_set", "tax_amount_set")),
    ("order_adjustments", ("amount_set", "tax_amount_set")),
)
CENT = Decimal("0.01")


def _money_bags(refund: dict[str, Any]) -> list[dict[str, Any]]:
    bags = []
    for list_field, set_fields in _REFUND_PARTS:
        for part in object_list(refund, list_field, "refund"):
            for field in set_fields:
                bag = part.get(field)
                if (isinstance(bag, dict) and isinstance(bag.get("shop_money"), dict)
                        and isinstance(bag.get("presentment_money"), dict)):
                    bags.append(bag)
    return bags


def _shop_currency_of(refund: dict[str, Any]) -> str | None:
    for bag in _money_bags(refund):
        code = bag["shop_money"].get("currency_code")
        if isinstance(code, str) and code:
            return code
    return None


def _to_shop_money(amount: Decimal, refund: dict[str, Any]) -> Decimal:
    """A presentment amount in shop money, at the rate the refund's own amounts show."""
    shop = presentment = Decimal(0)
    for bag in _money_bags(refund):
        shop += abs(money(bag["shop_money"].get("amount"), "refund shop_money"))
        presentment += abs(money(bag["presentment_money"].get("amount"),
                                 "refund presentment_money"))
    if presentment == 0:
        raise Rejected(400, "refund transaction in the presentment currency, and no shop money "
                            "in the refund to convert it with")
    return (amount * shop / presentment).quantize(CENT, rounding=ROUND_HALF_UP)


def refund_amount(refund: dict[str, Any], shop_currency: str | None) -> Decimal:
    """What a refund gave back, in shop money: its successful `refund` transactions."""
    shop_currency = shop_currency or _shop_currency_of(refund)
    total = Decimal(0)
    for tx in object_list(refund, "transactions", "refund"):
        if tx.get("kind") != "refund" or tx.get("status") != "success":
            continue
        amount_set = tx.get("amount_set")
        if isinstance(amount_set, dict) and isinstance(amount_set.get("shop_money"), dict):
            total += money(amount_set["shop_money"].get("amount"),
                           "refund transaction amount_set.shop_money")
            continue
        amount = money(require(tx, "amount", "refund transaction"), "refund transaction amount")
        currency = tx.get("currency")
        if currency and shop_currency and currency != shop_currency:
            amount = _to_shop_money(amount, refund)
        total += amount
    return total


def _refund(refund: Any, shop_currency: str | None) -> Refund:
    if not isinstance(refund, dict):
        raise Rejected(400, "refund is not an object")
    return Refund(refund_id=object_id(require(refund, "id", "refund"), "refund id"),
                  amount=refund_amount(refund, shop_currency))


# Stages of an order's life, for two states with the same `updated_at`: the later one wins.
_FINANCIAL_STAGES = {"pending": 1, "authorized": 1, "partially_paid": 2, "paid": 2,
                     "partially_refunded": 3, "refunded": 4, "voided": 5}
_CANCELLED_STAGE = 6


def _stage(order: dict[str, Any], topic: str) -> int:
    if topic == "orders/cancelled" or order.get("cancelled_at"):
        return _CANCELLED_STAGE
    return _FINANCIAL_STAGES.get(str(order.get("financial_status")), 0)


def _excluded_because(order: dict[str, Any], topic: str) -> str:
    if order.get("test") is True:
        return "test order"
    if topic == "orders/cancelled" or order.get("cancelled_at"):
        return "cancelled"
    if order.get("financial_status") == "voided":
        return "voided"
    return ""


def parse(
    topic: str, raw: bytes, shop: str, delivery_id: str, keys: CustomerKeys, now: datetime,
    upsell_property: str = UPSELL_PROPERTY,
) -> Event | None:
    """The event for one verified delivery, or None for a topic that carries no figure.
    Line items whose `properties` hold `upsell_property` are accepted upsells."""
    if topic not in ORDER_TOPICS and topic not in ("orders/delete", "refunds/create"):
        return None
    body = load_json(raw)
    if not isinstance(body, dict):
        raise Rejected(400, f"{topic} body is not a JSON object")
    common = {"shop": shop, "platform": PLATFORM, "delivery_id": delivery_id, "topic": topic}
    if topic == "refunds/create":
        order_id = object_id(require(body, "order_id", "refund"), "refund order_id")
        return RefundIssued(**common, order_id=order_id, refund=_refund(body, None))
    order_id = object_id(require(body, "id", "order"), "order id")
    if topic == "orders/delete":
        return OrderDeleted(**common, order_id=order_id, deleted_at=now, final=True)

    created_at = timestamp(require(body, "created_at", "order"), "order created_at")
    updated_at = timestamp(body.get("updated_at") or body["created_at"], "order updated_at")
    customer = body.get("customer")
    if customer is not None and not isinstance(customer, dict):
        raise Rejected(400, "order customer is not an object")
    customer = customer or {}
    email = body.get("email") or body.get("contact_email") or customer.get("email")
    line_items = object_list(body, "line_items", "order")
    refunds = object_list(body, "refunds", "order")
    excluded = _excluded_because(body, topic)
    currency = str(require(body, "currency", "order"))  # the shop currency
    return OrderState(
        **common,
        order_id=order_id,
        updated_at=updated_at,
        created_at=created_at,
        counts=not excluded,
        excluded_because=excluded,
        customer_key=keys.key(customer.get("id"), email),
        currency=currency,
        total=shop_money(body, "total_price", "order"),
        refunds=tuple(_refund(r, currency) for r in refunds),
        product_ids=tuple(
            object_id(li["product_id"], "line item product_id")
            for li in line_items
            if li.get("product_id") is not None
        ),
        upsell_line_items=upsell_line_items(line_items, "properties", "name", upsell_property),
        stage=_stage(body, topic),
    )
