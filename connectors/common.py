"""What both platforms' parsers need: exact JSON, money, timestamps and customer keys."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from xsell_stream.config import DEFAULT_UPSELL_PROPERTY

from .errors import Rejected


def load_json(raw: bytes) -> Any:
    """JSON with exact numbers: integers stay integers (ids above 2**53 survive), and
    fractions become Decimals, never floats."""
    try:
        return json.loads(raw, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(400, f"body is not valid JSON: {exc}") from None


def require(obj: Any, key: str, what: str) -> Any:
    if not isinstance(obj, dict) or obj.get(key) is None:
        raise Rejected(400, f"{what} has no {key!r}")
    return obj[key]


def object_list(obj: dict[str, Any], key: str, what: str) -> list[dict[str, Any]]:
    """`obj[key]` as a list of JSON objects; absent or null is an empty list."""
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise Rejected(400, f"{what} {key} is not a list of objects")
    return value


def money(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise Rejected(400, f"{what} is not an amount: {value!r}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise Rejected(400, f"{what} is not an amount: {value!r}") from None
    if not amount.is_finite():
        raise Rejected(400, f"{what} is not a finite amount: {value!r}")
    return amount


def object_id(value: Any, what: str) -> str:
    """A platform id as an exact decimal string."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Rejected(400, f"{what} is not an id: {value!r}")
    text = str(value).strip()
    if not text.isdigit():
        raise Rejected(400, f"{what} is not an id: {value!r}")
    return str(int(text))


def timestamp(value: Any, what: str, assume_utc: bool = False) -> datetime:
    """An ISO 8601 instant. Shopify sends an offset; WooCommerce's `_gmt` fields have none
    and are UTC (`assume_utc`)."""
    if not isinstance(value, str):
        raise Rejected(400, f"{what} is not a timestamp: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Rejected(400, f"{what} is not a timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        if not assume_utc:
            raise Rejected(400, f"{what} has no time zone: {value!r}")
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


@dataclass(frozen=True)
class CustomerKeys:
    """Customer keys of METRICS.md: the platform id, else the keyed hash of the normalised
    e-mail, else anonymous (None). E-mails never leave the connector in clear."""

    email_key: bytes

    def key(self, customer_id: Any, email: Any) -> str | None:
        if customer_id not in (None, "", 0, "0") and not isinstance(customer_id, bool):
            return f"id:{object_id(customer_id, 'customer id')}"
        if isinstance(email, str) and email.strip():
            normalised = email.strip().lower().encode()
            digest = hmac.new(self.email_key, normalised, hashlib.sha256).hexdigest()
            return f"email:{digest[:32]}"
        return None


# METRICS.md §5: an order line item marked as an accepted upsell by a line-item property
# (Shopify `properties: [{name, value}]`) or meta key (WooCommerce `meta_data: [{key, value}]`).
UPSELL_PROPERTY = DEFAULT_UPSELL_PROPERTY
_NOT_MARKED = frozenset({"", "0", "false", "no", "off"})


def upsell_line_items(line_items: list[dict[str, Any]], list_field: str, name_field: str,
                      prop: str) -> tuple[str, ...]:
    """Ids (or positions, for a line item without an id) of the line items whose `list_field`
    names `prop` with a value that is not empty, 0, false, no or off. Entries that are not
    name/value objects are ignored: these fields are free-form, and an order is never
    refused for them."""
    if not prop:
        return ()
    marked = []
    for index, item in enumerate(line_items):
        entries = item.get(list_field)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, dict) or entry.get(name_field) != prop:
                continue
            value = entry.get("value")
            if value is None or value is False or str(value).strip().lower() in _NOT_MARKED:
                continue
            line_id = item.get("id")
            valid = isinstance(line_id, int | str) and not isinstance(line_id, bool)
            marked.append(str(line_id) if valid and str(line_id) else f"#{index}")
            break
    return tuple(marked)
