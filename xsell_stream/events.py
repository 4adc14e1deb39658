"""The canonical, versioned events: the only thing connectors and the worker share.

Connectors turn a verified store delivery into exactly one event; the worker applies it to
Redis. Money is an exact decimal string in the shop currency. Ids are strings so that ids
above 2**53 survive every hop. Customer keys are already pseudonymous (`id:…` or a keyed
e-mail hash `email:…`); no event carries an e-mail in clear.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

SCHEMA_VERSION = 1

Platform = Literal["shopify", "woocommerce"]

# Exact decimals, at most 4 places (every ISO 4217 currency fits), bounded so that Redis
# integer arithmetic in 1/10000 units cannot overflow.
MONEY_SCALE = 10_000
MAX_ABS_AMOUNT = Decimal("100000000000")  # 1e11 per order is absurd for any shop


def _check_money(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("amount is not a finite number")
    if abs(value) > MAX_ABS_AMOUNT:
        raise ValueError(f"amount {value} is out of range")
    if value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise ValueError(f"amount {value} has more than 4 decimal places")
    return value


Money = Annotated[Decimal, Field(allow_inf_nan=False)]


def to_units(amount: Decimal) -> int:
    """Money as an integer count of 1/10000 of the currency unit (exact)."""
    return int(amount * MONEY_SCALE)


def from_units(units: int) -> Decimal:
    return Decimal(units) / MONEY_SCALE


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    shop: str
    platform: Platform
    # The store's delivery id; the event is "done" once its effect is in Redis.
    delivery_id: str
    topic: str


class Refund(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    refund_id: str
    amount: Money  # positive: what was given back, in shop money

    @field_validator("amount")
    @classmethod
    def _money(cls, value: Decimal) -> Decimal:
        return _check_money(value)


class OrderState(_Event):
    """The whole state of one order as of `updated_at`."""

    kind: Literal["order_state"] = "order_state"
    order_id: str
    updated_at: datetime
    created_at: datetime
    counts: bool
    # Why an order does not count (test, cancelled, voided, pending, …); empty when it counts.
    excluded_because: str = ""
    customer_key: str | None
    currency: str
    total: Money
    refunds: tuple[Refund, ...] = ()
    product_ids: tuple[str, ...] = ()
    # Line items marked as accepted upsells (METRICS.md §5): while the order counts, its
    # customer has accepted (and so was presented) an upsell in the order's period.
    upsell_line_items: tuple[str, ...] = ()
    # When the connector received an explicit restore (WooCommerce `order.restored`): the
    # order is known to exist again from this instant on, whatever its `updated_at` says.
    restored_at: datetime | None = None
    # How far along its life the order is, ranked by the connector for its platform (paid
    # after pending, cancelled after paid, ...): of two states with the same `updated_at`
    # (a checkout that creates and pays an order in one second), the later stage wins.
    stage: int = Field(default=0, ge=0, le=99)
    # True when `refunds` is every refund of the order as of `updated_at` (WooCommerce, whose
    # refunds exist only inside the order and can be deleted there): the newest state's list
    # replaces what was known. False (Shopify): refunds are merged from every state and
    # `refunds/create`, since a refund is never taken back there.
    refunds_complete: bool = False

    @field_validator("total")
    @classmethod
    def _money(cls, value: Decimal) -> Decimal:
        return _check_money(value)

    @field_validator("updated_at", "created_at", "restored_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamp has no time zone")
        return value.astimezone(UTC)


class RefundIssued(_Event):
    """A refund on an order, possibly seen before the order itself."""

    kind: Literal["refund"] = "refund"
    order_id: str
    refund: Refund


class OrderDeleted(_Event):
    """The order is gone (WooCommerce `order.deleted`, Shopify `orders/delete`).

    The stores send only the order id, no time of deletion, so `deleted_at` is the instant
    the connector received the delivery (fixed in the event: re-applying it from Kafka gives
    the same result). A deletion hides every state of the order that is not known to be
    newer: a state whose `updated_at` is later, or a restore received later. A `final`
    deletion (Shopify, where deleting an order cannot be undone) hides every state."""

    kind: Literal["order_deleted"] = "order_deleted"
    order_id: str
    deleted_at: datetime
    final: bool = False

    @field_validator("deleted_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp has no time zone")
        return value.astimezone(UTC)


class OfferEvent(_Event):
    """An upsell offer presented to, accepted or declined by a customer."""

    kind: Literal["offer"] = "offer"
    offer_id: str
    customer_key: str
    action: Literal["presented", "accepted", "declined"]
    at: datetime
    order_id: str | None = None

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp has no time zone")
        return value.astimezone(UTC)


Event = Annotated[
    OrderState | RefundIssued | OrderDeleted | OfferEvent, Field(discriminator="kind")
]
_event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()


def decode(raw: bytes) -> Event:
    return _event_adapter.validate_json(raw)


def partition_key(event: Event) -> bytes:
    """All events of one order (or one customer's offers) go to one partition, in order."""
    if isinstance(event, OfferEvent):
        return f"{event.shop}|offer|{event.customer_key}".encode()
    return f"{event.shop}|{event.order_id}".encode()
